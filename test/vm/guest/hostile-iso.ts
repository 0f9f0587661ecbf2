/**
 * A hostile backend on a live isochronous stream (run by qrexec-sim): it is the virtual UAC1
 * microphone, answering honestly, until the stream has carried ISO_HONEST (20) iso URBs; then it
 * answers the next one (or, for `iso-on-control`, the next control URB) with the violation
 * named by CASE:
 *   packets         number_of_packets different from what was submitted
 *   offsets         a descriptor's offset and length outside what was submitted
 *   sum             descriptor actual_lengths that do not add up to actual_length
 *   error-count     error_count above the packet count
 *   non-iso         a non-iso answer (no descriptors) to an iso URB
 *   iso-on-control  an iso answer (a descriptor) to a control URB
 *   hostile-iso.js CASE
 * Stays until the other side closes the link.
 */
import { ClientStreamDecoder } from "../../../protocol/client-decoder.js";
import { Direction } from "../../../protocol/constants.js";
import { encode } from "../../../protocol/encoder.js";
import type { CmdSubmit, RetSubmit } from "../../../protocol/messages.js";
import { openLink } from "../../../qrexec/link.js";
import { UacMicrophone } from "../../../device/uac-microphone.js";
import { isoRetSubmit } from "../../../device/urb-server.js";

const ISO_HONEST = 20;
const which = process.argv[2] ?? "";
const CASES = ["packets", "offsets", "sum", "error-count", "non-iso", "iso-on-control"];
if (!CASES.includes(which)) {
  process.stderr.write(`unknown case ${which} (${CASES.join(", ")})\n`);
  process.exit(64);
}
const DEVID = (0x7f << 16) | 1;
const mic = new UacMicrophone(DEVID);
const link = openLink();
link.input.on("end", () => process.exit(0));
link.input.on("error", () => process.exit(0));
const send = (m: RetSubmit) => {
  for (const b of encode(m)) link.output.write(b);
};

/** The honest RET_SUBMIT for `c`, as the URB server builds it (iso: device/urb-server.ts isoRetSubmit). */
async function honest(c: CmdSubmit): Promise<RetSubmit> {
  const r = await mic.submit(c, c.direction === Direction.OUT ? Buffer.concat(c.payload) : Buffer.alloc(0)).result;
  const base: RetSubmit = { kind: "RET_SUBMIT", seqnum: c.seqnum, devid: 0, direction: 0, ep: 0, status: r.status, actualLength: 0, startFrame: 0, numberOfPackets: 0, errorCount: 0, payload: [] };
  if (c.isoPackets === undefined) {
    const data = c.direction === Direction.IN ? (r.data ?? Buffer.alloc(0)).subarray(0, c.transferBufferLength) : undefined;
    return { ...base, actualLength: data ? data.length : c.transferBufferLength, payload: data && data.length > 0 ? [data] : [] };
  }
  return isoRetSubmit(c, r);
}

function tamper(m: RetSubmit): RetSubmit {
  const d = m.isoPackets ?? [];
  switch (which) {
    case "packets":
      return { ...m, numberOfPackets: d.length + 1, isoPackets: [...d, { offset: 0, length: 0, actualLength: 0, status: 0 }] };
    case "offsets":
      return { ...m, isoPackets: d.map((p, i) => (i === 0 ? { ...p, offset: 1 << 20, length: 4096 } : p)) };
    case "sum":
      return { ...m, isoPackets: d.map((p, i) => (i === 0 ? { ...p, actualLength: Math.max(0, p.actualLength - 4) } : p)) };
    case "error-count":
      return { ...m, errorCount: d.length + 5 };
    case "non-iso": {
      const { isoPackets: _dropped, ...rest } = m;
      return { ...rest, numberOfPackets: 0 };
    }
    default: // iso-on-control
      return { ...m, numberOfPackets: 1, isoPackets: [{ offset: 0, length: m.actualLength, actualLength: m.actualLength, status: 0 }] };
  }
}

link.output.write(`${DEVID} 12\n`);
const dec = new ClientStreamDecoder({ phase: "urb", endpointType: (ep, dir) => mic.endpoint(ep, dir) });
let isoAnswered = 0;
let fired = false;
// answers leave in submission order, as an HCD completes them
let tail: Promise<void> = Promise.resolve();
link.input.on("data", (chunk: Buffer) => {
  dec.push(chunk);
  for (let m = dec.next(); m !== null; m = dec.next()) {
    if (m.kind === "CMD_UNLINK") {
      // the stream's end: every URB is answered in its turn, so the unlink finds it done (status 0)
      const u = m;
      tail = tail.then(() => {
        for (const b of encode({ kind: "RET_UNLINK", seqnum: u.seqnum, devid: 0, direction: 0, ep: 0, status: 0 })) link.output.write(b);
      });
      continue;
    }
    if (m.kind !== "CMD_SUBMIT") continue;
    const c = m;
    const answer = honest(c);
    tail = tail.then(async () => {
      const r = await answer;
      const iso = c.isoPackets !== undefined;
      const due = !fired && isoAnswered >= ISO_HONEST && (which === "iso-on-control" ? !iso : iso);
      if (due) fired = true;
      send(due ? tamper(r) : r);
      if (iso) isoAnswered++;
    });
  }
  if (dec.error) process.exit(65);
});
