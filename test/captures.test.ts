/**
 * The real kernel captures (Debian 6.1 vhci-hcd / usbip-host with usbip-utils 2.0) decode
 * completely, re-encode byte-identically, and decode the same under any chunking.
 */
import test from "ava";
import { decodeCapture, type CaptureItem } from "../protocol/capture.js";
import { encode } from "../protocol/encoder.js";
import { capture, normalize, splitAt } from "./helpers/fixtures.js";
import { ClientStreamDecoder } from "../protocol/client-decoder.js";
import { ServerStreamDecoder } from "../protocol/server-decoder.js";
import { UrbTable } from "../protocol/urb-table.js";
import type { Message } from "../protocol/messages.js";

function collect(items: Iterable<CaptureItem>) {
  const client: Message[] = [];
  const server: Message[] = [];
  const errors: string[] = [];
  for (const i of items) {
    if (i.type === "error") errors.push(i.error.message);
    else (i.from === "client" ? client : server).push(i.message);
  }
  return { client, server, errors };
}

const reencode = (ms: Message[]) => Buffer.concat(ms.flatMap((m) => encode(m)));

test("tcp-1 (usbip list -r): OP_REQ_DEVLIST / OP_REP_DEVLIST decode completely and re-encode identically", (t) => {
  const c = capture("tcp-1.client-to-server.bin");
  const s = capture("tcp-1.server-to-client.bin");
  const r = collect(decodeCapture(c, s));
  t.deepEqual(r.errors, []);
  t.deepEqual(r.client.map((m) => m.kind), ["OP_REQ_DEVLIST"]);
  t.deepEqual(r.server.map((m) => m.kind), ["OP_REP_DEVLIST"]);
  const rep = r.server[0]!;
  if (rep.kind !== "OP_REP_DEVLIST") return t.fail();
  t.is(rep.devices.length, 1);
  const d = rep.devices[0]!;
  // as `usbip list -r` printed it (usbip-list.txt)
  t.is(d.busid, "1-1");
  t.is(d.path, "/sys/devices/platform/dummy_hcd.0/usb1/1-1");
  t.is(d.idVendor, 0x1d6b);
  t.is(d.idProduct, 0x0104);
  t.is(d.bConfigurationValue, 0);
  t.is(d.bNumInterfaces, 0);
  t.true(reencode(r.client).equals(c));
  t.true(reencode(r.server).equals(s));
});

test("tcp-2 (usbip attach + 1 MiB read): import and the whole URB phase decode and re-encode identically", (t) => {
  const c = capture("tcp-2.client-to-server.bin");
  const s = capture("tcp-2.server-to-client.bin");
  const r = collect(decodeCapture(c, s));
  t.deepEqual(r.errors, []);
  t.is(r.client[0]!.kind, "OP_REQ_IMPORT");
  t.is(r.server[0]!.kind, "OP_REP_IMPORT");
  const cmds = r.client.filter((m) => m.kind === "CMD_SUBMIT");
  const rets = r.server.filter((m) => m.kind === "RET_SUBMIT");
  t.true(cmds.length > 100);
  // every byte of both files is accounted for
  t.true(reencode(r.client).equals(c), "client stream re-encodes identically");
  t.true(reencode(r.server).equals(s), "server stream re-encodes identically");
  // the 1 MiB read: IN payload bytes on bulk endpoints add up to at least 1 MiB
  let inBytes = 0;
  for (const m of rets) if (m.kind === "RET_SUBMIT") inBytes += m.payload.reduce((n, b) => n + b.length, 0);
  t.true(inBytes >= 1 << 20, `IN bytes ${inBytes}`);
});

test("tcp-2 decodes identically under chunked feeding (fixed sizes and split at every byte of the client stream)", (t) => {
  const c = capture("tcp-2.client-to-server.bin");
  const s = capture("tcp-2.server-to-client.bin");
  const ref = collect(decodeCapture(c, s));
  const refC = ref.client.map(normalize);
  const refS = ref.server.map(normalize);
  for (const size of [1, 7, 48, 49, 1000, 4096, 65536]) {
    const r = collect(decodeCapture(c, s, size));
    t.deepEqual(r.errors, [], `chunk ${size}`);
    t.deepEqual(r.client.map(normalize), refC, `client, chunk ${size}`);
    t.deepEqual(r.server.map(normalize), refS, `server, chunk ${size}`);
  }
});

test("tcp-2 client stream split into two at every byte offset decodes identically", (t) => {
  const c = capture("tcp-2.client-to-server.bin");
  const ref = collect(decodeCapture(c, Buffer.alloc(0)));
  const refC = JSON.stringify(ref.client.map(normalize));
  let bad = -1;
  for (let cut = 1; cut < c.length && bad < 0; cut++) {
    const items: CaptureItem[] = [];
    // two chunks, via the generic splitter
    const [a, b] = splitAt(c, [cut]);
    for (const i of decodeCapture(Buffer.concat([a!, b!]), Buffer.alloc(0), cut)) items.push(i);
    const r = collect(items);
    if (r.errors.length > 0 || JSON.stringify(r.client.map(normalize)) !== refC) bad = cut;
  }
  t.is(bad, -1, `first differing split: ${bad}`);
});

test("tcp-2 server stream split into two at every byte offset of its first 4 KiB and around each message start", (t) => {
  const c = capture("tcp-2.client-to-server.bin");
  const s = capture("tcp-2.server-to-client.bin");
  const ref = collect(decodeCapture(c, s));
  const offsets = new Set<number>();
  for (let i = 1; i < 4096; i++) offsets.add(i);
  // around every message start: inside the previous message, at the boundary, inside the header
  let pos = 0;
  for (const m of ref.server) {
    for (const d of [-1, 0, 1, 20, 47, 48, 49]) offsets.add(pos + d);
    pos += encode(m).reduce((n, b) => n + b.length, 0);
  }
  t.is(pos, s.length);
  let bad = -1;
  for (const cut of offsets) {
    if (cut <= 0 || cut >= s.length) continue;
    const r = decodeServerInTwo(c, s, cut);
    // same message count and every byte re-encoded in place
    if (r.error !== null || r.messages.length !== ref.server.length || !reencode(r.messages).equals(s)) {
      bad = cut;
      break;
    }
  }
  t.is(bad, -1, `first differing split: ${bad}`);
});

function decodeServerInTwo(c: Buffer, s: Buffer, cut: number) {
  const table = new UrbTable();
  new ClientStreamDecoder({ table, phase: "op" }).feed(c);
  const sd = new ServerStreamDecoder({ table, phase: "op" });
  const messages: Message[] = [...sd.feed(s.subarray(0, cut)), ...sd.feed(s.subarray(cut))];
  return { messages, error: sd.end() };
}
