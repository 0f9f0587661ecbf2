/**
 * A copy stage with blocking I/O for bench/relay.ts: stdin to stdout with readSync/writeSync
 * and a 1 MiB buffer, no event loop. Not a relay: it shows what a relay data path built on
 * blocking reads and writes (worker threads) could reach, against the event-loop floor
 * (pipe-stage.ts) and cat. stdin/stdout are pipes the bench made; they may be non-blocking
 * (shared with the parent's ends), hence the EAGAIN retries.
 */
import { readSync, writeSync } from "node:fs";

const buf = Buffer.allocUnsafe(1 << 20);
const again = (e: unknown) => (e as NodeJS.ErrnoException).code === "EAGAIN";
for (;;) {
  let n: number;
  try {
    n = readSync(0, buf, 0, buf.length, null);
  } catch (e) {
    if (again(e)) continue;
    throw e;
  }
  if (n === 0) break;
  for (let off = 0; off < n; ) {
    try {
      off += writeSync(1, buf, off, n - off);
    } catch (e) {
      if (!again(e)) throw e;
    }
  }
}
