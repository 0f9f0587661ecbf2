import test from "ava";
import fc from "fast-check";
import { RecentSeqnums } from "../protocol/recent-seqnums.js";

test("RecentSeqnums remembers exactly the last `capacity` distinct seqnums, oldest forgotten first (against a list model)", (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 8 }), fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 200 }), (capacity, adds) => {
      const r = new RecentSeqnums(capacity);
      const model: number[] = [];
      for (const s of adds) {
        r.add(s);
        if (!model.includes(s)) {
          model.push(s);
          if (model.length > capacity) model.shift();
        }
        for (let q = 0; q <= 20; q++) if (r.has(q) !== model.includes(q)) return false;
      }
      return true;
    }),
  );
  t.pass();
});

test("RecentSeqnums with the default capacity: seqnum 1 forgotten after 4096 newer ones, not before", (t) => {
  const r = new RecentSeqnums();
  for (let s = 1; s <= 4096; s++) r.add(s);
  t.true(r.has(1));
  r.add(4097);
  t.false(r.has(1));
  t.true(r.has(2));
  t.true(r.has(4097));
});
