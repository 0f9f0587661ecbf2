import test from "ava";
import fc from "fast-check";
import { Slab } from "../shared/slab.js";

test("Slab: every buffer has the length asked for, starts aligned, and no two handed out overlap", (t) => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 5000 }), { maxLength: 100 }), (sizes) => {
      const slab = new Slab(16384, 64);
      const got = sizes.map((n) => slab.take(n));
      const spans = got.map((b) => ({ ab: b.buffer, start: b.byteOffset, end: b.byteOffset + b.length }));
      for (let i = 0; i < got.length; i++) {
        if (got[i]!.length !== sizes[i]) return false;
        if (sizes[i]! <= 4096 && got[i]!.byteOffset % 64 !== 0) return false;
        for (let j = 0; j < i; j++) {
          const a = spans[i]!;
          const b = spans[j]!;
          if (a.ab === b.ab && a.start < b.end && b.start < a.end && a.end > a.start && b.end > b.start) return false;
        }
      }
      return true;
    }),
  );
  t.pass();
});

test("Slab: small buffers share one allocation; one above a quarter of the slab has its own; takeZeroed zeroes", (t) => {
  const slab = new Slab(16384, 64);
  const a = slab.take(100);
  const b = slab.take(100);
  t.is(a.buffer, b.buffer);
  t.is(b.byteOffset - a.byteOffset, 128);
  const big = slab.take(4097);
  t.not(big.buffer, a.buffer);
  a.fill(0xff);
  const z = slab.takeZeroed(100);
  t.true(z.every((x) => x === 0));
  // a slab that cannot hold the next request is left for a fresh one
  const s2 = new Slab(1024, 8);
  const first = s2.take(200);
  s2.take(200);
  s2.take(200);
  s2.take(200);
  const fifth = s2.take(250);
  t.not(fifth.buffer, first.buffer);
});
