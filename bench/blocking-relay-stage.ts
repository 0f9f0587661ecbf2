/**
 * The relay's hot direction on blocking I/O, for bench/relay.ts: RET_* read from stdin with
 * readSync into one reused 1 MiB buffer, decoded and checked with the relay's own decoders and
 * rules (protocol/), re-encoded, and written with writevSync — no event loop. Not usable as the
 * product's data path: a read blocked in a thread holds process exit until the peer writes or
 * closes (Node cannot interrupt it), and a relay must be able to drop a hostile, silent peer at
 * once (qrexec/link.ts). It is here to measure what such a design would gain, in the same run.
 */
import { readFileSync, readSync, writevSync } from "node:fs";
import { ClientStreamDecoder } from "../protocol/client-decoder.js";
import { encode } from "../protocol/encoder.js";
import { checkRetSubmit } from "../protocol/relay-rules.js";
import { ServerStreamDecoder } from "../protocol/server-decoder.js";
import { UrbTable } from "../protocol/urb-table.js";

const table = new UrbTable();
new ClientStreamDecoder({ table, phase: "urb" }).feed(readFileSync(process.argv[2]!));
const dec = new ServerStreamDecoder({ table, phase: "urb" });
const SIZE = 1 << 20;
let buf = Buffer.allocUnsafe(SIZE);
let spare = Buffer.allocUnsafe(SIZE);
let fill = 0; // bytes of an incomplete message kept at the front of buf
const again = (e: unknown) => (e as NodeJS.ErrnoException).code === "EAGAIN";

function writeAll(list: Buffer[]): void {
  while (list.length > 0) {
    let n: number;
    try {
      n = writevSync(1, list);
    } catch (e) {
      if (again(e)) continue;
      throw e;
    }
    while (n > 0) {
      if (list[0]!.length <= n) n -= list.shift()!.length;
      else {
        list[0] = list[0]!.subarray(n);
        n = 0;
      }
    }
  }
}

for (;;) {
  let n: number;
  try {
    n = readSync(0, buf, fill, SIZE - fill, null);
  } catch (e) {
    if (again(e)) continue;
    throw e;
  }
  if (n === 0) break;
  const end = fill + n;
  const before = dec.offset;
  dec.push(buf.subarray(0, end));
  const out: Buffer[] = [];
  for (let m = dec.next(); m !== null; m = dec.next()) {
    if (m.kind !== "RET_SUBMIT") throw new Error(`unexpected ${m.kind}`);
    checkRetSubmit(m, dec.lastSubmit!, dec.messageOffset);
    out.push(...encode(m));
  }
  if (dec.error) {
    process.stderr.write(`blocking-relay-stage: ${dec.error.message}\n`);
    process.exit(2);
  }
  writeAll(out);
  // the incomplete tail moves to the front of the other buffer; the decoder restarts on it
  const used = dec.offset - before;
  buf.copy(spare, 0, used, end);
  [buf, spare] = [spare, buf];
  fill = end - used;
  dec.reset("urb");
}
