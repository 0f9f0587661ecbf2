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
      const taken = q.takeSegments(i + n);
      t.true(Buffer.concat(taken).equals(data.subarray(skip, skip + i + n)));
      t.is(q.offset, skip + i + n);
    }),
    { numRuns: 300 },
  );
});
