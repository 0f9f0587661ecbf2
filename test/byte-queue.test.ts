/**
 * ByteQueue's zero-copy reads over any chunking: peekSegments (the relay's cut-through) and
 * takeSegments return views of the pushed chunks that concatenate to exactly the bytes asked for.
 */
import test from "ava";
import fc from "fast-check";
import { ByteQueue } from "../protocol/byte-queue.js";

const chunked = fc.uint8Array({ minLength: 1, maxLength: 400 }).chain((bytes) =>
  fc.tuple(fc.constant(Buffer.from(bytes)), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }), fc.nat(bytes.length), fc.nat(bytes.length), fc.nat(bytes.length)),
);

test("peekSegments / takeSegments: views of the pushed chunks, equal to the bytes at that place (property)", (t) => {
  fc.assert(
    fc.property(chunked, ([data, cuts, skipRaw, iRaw, nRaw]) => {
      const q = new ByteQueue();
      const chunks: Buffer[] = [];
      for (let p = 0, k = 0; p < data.length; k++) {
        // each chunk in its own ArrayBuffer, so a view can be told from a copy
        const c = Buffer.from(new Uint8Array(data.subarray(p, p + cuts[k % cuts.length]!)).buffer);
        chunks.push(c);
        q.push(c);
        p += c.length;
      }
      const skip = Math.min(skipRaw, data.length);
      q.skip(skip);
      const i = Math.min(iRaw, q.length);
      const n = Math.min(nRaw, q.length - i);
      const segs = q.peekSegments(i, n);
      t.true(Buffer.concat(segs).equals(data.subarray(skip + i, skip + i + n)));
      for (const s of segs) t.true(s.length > 0 && chunks.some((c) => c.buffer === s.buffer), "a copy, not a view");
      t.is(q.length, data.length - skip, "peek consumed bytes");
      // a range to the end (found from the back)
      const tail = q.peekSegments(i, q.length - i);
      t.true(Buffer.concat(tail).equals(data.subarray(skip + i)));
      for (const s of tail) t.true(s.length > 0 && chunks.some((c) => c.buffer === s.buffer), "a copy, not a view");
      const taken = q.takeSegments(i + n);
      t.true(Buffer.concat(taken).equals(data.subarray(skip, skip + i + n)));
      t.is(q.offset, skip + i + n);
    }),
    { numRuns: 300 },
  );
});

test("peekSegments of the newest bytes looks only at the chunks holding them, however many came before", (t) => {
  const q = new ByteQueue();
  for (let i = 0; i < 10_000; i++) q.push(Buffer.from([i & 0xff]));
  q.skip(3);
  // count the chunk reads through the queue's own array
  let reads = 0;
  const inner = (q as unknown as { chunks: Buffer[] }).chunks;
  (q as unknown as { chunks: Buffer[] }).chunks = new Proxy(inner, {
    get(target, prop, recv) {
      if (typeof prop === "string" && /^\d+$/.test(prop)) reads++;
      return Reflect.get(target, prop, recv) as unknown;
    },
  });
  const segs = q.peekSegments(q.length - 2, 2);
  t.deepEqual(Buffer.concat(segs), Buffer.from([(9998) & 0xff, 9999 & 0xff]));
  t.true(reads <= 3, `${reads} chunk reads for the last 2 bytes`);
});
