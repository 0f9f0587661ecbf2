/**
 * A hostile peer on a qrexec link, for the relay scenarios (run by qrexec-sim).
 *   hostile-peer.js backend CASE   — speaks the handshake, plays a minimal USB device
 *                                     (descriptors, SET_CONFIGURATION) and answers with the
 *                                     CVE-class RET named by CASE
 *   hostile-peer.js frontend CASE  — reads the handshake, then sends the CMD named by CASE
 *   hostile-peer.js frontend iso-CASE IF:ALT:EP:MAXP — configures the device, selects the iso
 *                                     OUT endpoint's alternate setting, then sends the iso CMD
 *                                     named by CASE
 * Stays until the other side closes the link.
 */
import { ClientStreamDecoder } from "../../../protocol/client-decoder.js";
import { ServerStreamDecoder } from "../../../protocol/server-decoder.js";
import { encode } from "../../../protocol/encoder.js";
import type { CmdSubmit, RetSubmit } from "../../../protocol/messages.js";
import { openLink } from "../../../qrexec/link.js";

const [role, which] = process.argv.slice(2) as [string, string];
const link = openLink();
const send = (b: Buffer[]) => {
  for (const x of b) link.output.write(x);
};
link.input.on("end", () => process.exit(0));
link.input.on("error", () => process.exit(0));

const DEVICE = Buffer.from([18, 1, 0x00, 0x02, 0, 0, 0, 64, 0x34, 0x12, 0x78, 0x56, 0x00, 0x01, 0, 0, 0, 1]);
const CONFIG = Buffer.from([9, 2, 18, 0, 1, 1, 0, 0x80, 50, 9, 4, 0, 0, 0, 0xff, 0, 0, 0]);

function ret(c: CmdSubmit, over: Partial<RetSubmit> = {}): RetSubmit {
  return { kind: "RET_SUBMIT", seqnum: c.seqnum, devid: 0, direction: 0, ep: 0, status: 0, actualLength: 0, startFrame: 0, numberOfPackets: 0, errorCount: 0, payload: [], ...over };
}

/** The honest answer of a minimal vendor-class device. */
function answer(c: CmdSubmit): RetSubmit {
  const [type, req, , descType] = [c.setup[0]!, c.setup[1]!, c.setup[2]!, c.setup[3]!];
  const data = (b: Buffer) => {
    const n = Math.min(b.length, c.transferBufferLength);
    return ret(c, { actualLength: n, payload: n > 0 ? [b.subarray(0, n)] : [] });
  };
  if (c.ep === 0 && type === 0x80 && req === 6 && descType === 1) return data(DEVICE);
  if (c.ep === 0 && type === 0x80 && req === 6 && descType === 2) return data(CONFIG);
  if (c.ep === 0 && type === 0x80 && req === 0) return data(Buffer.alloc(2));
  if (c.direction === 0) return ret(c, { actualLength: c.transferBufferLength });
  return ret(c, { status: -32 });
}

if (role === "backend") {
  send([Buffer.from("65538 480\n")]);
  const dec = new ClientStreamDecoder();
  let fired = false;
  link.input.on("data", (chunk: Buffer) => {
    dec.push(chunk);
    for (let m = dec.next(); m !== null; m = dec.next()) {
      if (m.kind !== "CMD_SUBMIT" || fired) continue;
      const honest = answer(m);
      const trigger = which === "out-payload" ? m.direction === 0 : true;
      if (!trigger) {
        send(encode(honest));
        continue;
      }
      fired = true;
      const tbl = m.transferBufferLength;
      switch (which) {
        case "oversize":
          send(encode(ret(m, { actualLength: tbl + 512, payload: [Buffer.alloc(tbl + 512, 0x41)] })));
          break;
        case "packets":
          send([...encode(ret(m, { actualLength: 0 })).map((b, i) => (i === 0 ? patch(b, 8, 64) : b)), Buffer.alloc(64 * 16, 0x42)]);
          break;
        case "iso-offsets":
          send(encode(ret(m, { actualLength: 0, numberOfPackets: 1, isoPackets: [{ offset: 1_000_000, length: 4096, actualLength: 0, status: 0 }] })));
          break;
        case "unknown-seqnum":
          send(encode({ ...honest, seqnum: m.seqnum + 1000 }));
          break;
        case "duplicate":
          send([...encode(honest), ...encode(honest)]);
          break;
        case "out-payload":
          send([...encode(honest), Buffer.alloc(64, 0x43)]);
          break;
        case "status":
          send(encode({ ...honest, status: -100000 }));
          break;
        default:
          process.stderr.write(`unknown case ${which}\n`);
          process.exit(64);
      }
    }
  });
} else if (which.startsWith("iso-")) {
  // iso cases: "IF:ALT:EP:MAXP" names the device's iso OUT endpoint. The peer configures the
  // device (usbip-host's bind left it unconfigured: the generic driver's disconnect does that)
  // and selects the endpoint's alternate setting with honest requests, each answered by a 48-byte
  // RET_SUBMIT, then sends (seqnum 3) the iso CMD_SUBMIT that usb_submit_urb would refuse
  const [intf, alt, ep, maxp] = (process.argv[4] ?? "").split(":").map(Number) as [number, number, number, number];
  const dec = new ServerStreamDecoder({ phase: "handshake" });
  let devid: number | undefined;
  let answered = 0;
  const control = (seqnum: number, setup: number[]): Buffer[] => encode({ kind: "CMD_SUBMIT", seqnum, devid: devid!, direction: 0, ep: 0, transferFlags: 0, transferBufferLength: 0, startFrame: 0, numberOfPackets: 0, interval: 0, setup: Buffer.from(setup), payload: [] });
  link.input.on("data", (chunk: Buffer) => {
    if (devid === undefined) {
      dec.push(chunk);
      for (let m = dec.next(); m !== null; m = dec.next()) {
        if (m.kind !== "HANDSHAKE") continue;
        devid = m.devid;
        send(control(1, [0x00, 9, 1, 0, 0, 0, 0, 0])); // SET_CONFIGURATION 1
        return;
      }
      return;
    }
    const before = answered;
    answered += chunk.length;
    if (before < 48 && answered >= 48) send(control(2, [0x01, 11, alt, 0, intf, 0, 0, 0])); // SET_INTERFACE
    if (before >= 96 || answered < 96) return;
    const base: CmdSubmit = { kind: "CMD_SUBMIT", seqnum: 3, devid, direction: 0, ep, transferFlags: 0, transferBufferLength: 0, startFrame: 0, numberOfPackets: 0, interval: 1, setup: Buffer.alloc(8), payload: [] };
    const packet = (offset: number, length: number) => ({ offset, length, actualLength: 0, status: 0 });
    const iso = (tbl: number, packets: ReturnType<typeof packet>[]): CmdSubmit => ({ ...base, transferBufferLength: tbl, numberOfPackets: packets.length, isoPackets: packets, payload: tbl > 0 ? [Buffer.alloc(tbl, 0x11)] : [] });
    switch (which) {
      case "iso-zero-packets": // usb_submit_urb: -EINVAL
        send(encode({ ...base, transferBufferLength: maxp, payload: [Buffer.alloc(maxp, 0x11)] }));
        break;
      case "iso-too-many": // above USBIP_MAX_ISO_PACKETS
        send(encode(iso(1025, Array.from({ length: 1025 }, (_, i) => packet(i, 1)))));
        break;
      case "iso-packet-length": // above the endpoint's bytes per interval: -EMSGSIZE
        send(encode(iso(maxp + 1, [packet(0, maxp + 1)])));
        break;
      case "iso-sum": // each packet inside the buffer, together above it
        send(encode(iso(maxp, [packet(0, maxp), packet(0, maxp)])));
        break;
      default:
        process.stderr.write(`unknown case ${which}\n`);
        process.exit(64);
    }
  });
} else {
  const dec = new ServerStreamDecoder({ phase: "handshake" });
  let sent = false;
  link.input.on("data", (chunk: Buffer) => {
    dec.push(chunk);
    for (let m = dec.next(); m !== null; m = dec.next()) {
      if (m.kind !== "HANDSHAKE" || sent) continue;
      sent = true;
      const base: CmdSubmit = { kind: "CMD_SUBMIT", seqnum: 1, devid: m.devid, direction: 1, ep: 0, transferFlags: 0x200, transferBufferLength: 18, startFrame: 0, numberOfPackets: 0, interval: 0, setup: Buffer.from([0x80, 6, 0, 1, 0, 0, 18, 0]), payload: [] };
      const h = encode(base)[0]!;
      switch (which) {
        case "ep16":
          send([patch(h, 4, 16)]);
          break;
        case "negative-length":
          send([patch(h, 6, -1)]);
          break;
        case "wrong-devid":
          send([patch(h, 2, m.devid + 1)]);
          break;
        case "control-length":
          send([patch(h, 6, 4096)]);
          break;
        case "unknown-unlink":
          send(encode({ kind: "CMD_UNLINK", seqnum: 2, devid: m.devid, direction: 0, ep: 0, unlinkSeqnum: 77 }));
          break;
        case "missing-endpoint":
          send(encode({ ...base, ep: 9, setup: Buffer.alloc(8) }));
          break;
        default:
          process.stderr.write(`unknown case ${which}\n`);
          process.exit(64);
      }
    }
  });
}

function patch(b: Buffer, word: number, v: number): Buffer {
  const c = Buffer.from(b);
  c.writeUInt32BE(v >>> 0, word * 4);
  return c;
}
