/** The hand-written URB header path agrees with the binary-parser / smart-buffer reference. */
import test from "ava";
import fc from "fast-check";
import { parseUrbHeaderWithBinaryParser, writeUrbHeaderWithSmartBuffer } from "../bench/reference-codec.js";
import { s32, u32, writeUrbHeader } from "../protocol/urb-header.js";

const word = fc.integer({ min: 0, max: 0xffff_ffff });

test("hand parse == binary-parser layout, hand write == smart-buffer, for any header", (t) => {
  fc.assert(
    fc.property(fc.array(word, { minLength: 10, maxLength: 10 }), fc.uint8Array({ minLength: 8, maxLength: 8 }), (w, setup) => {
      const tail = Buffer.from(setup);
      const h = writeUrbHeader(w[0]!, w[1]!, w[2]!, w[3]!, w[4]!, w[5]!, w[6]!, w[7]!, w[8]!, w[9]!, tail);
      const ref = parseUrbHeaderWithBinaryParser(h);
      t.deepEqual(
        [u32(h, 0), u32(h, 4), u32(h, 8), u32(h, 12), u32(h, 16), u32(h, 20), s32(h, 24), s32(h, 28), s32(h, 32), s32(h, 36)],
        [ref.command, ref.seqnum, ref.devid, ref.direction, ref.ep, ref.transferFlags, ref.transferBufferLength, ref.startFrame, ref.numberOfPackets, ref.interval],
      );
      t.true(ref.setup.equals(tail));
      t.true(writeUrbHeaderWithSmartBuffer(ref).equals(h));
    }),
    { numRuns: 500 },
  );
});

test("a header without tail has 8 zero bytes at 40..47", (t) => {
  const h = writeUrbHeader(3, 1, 2, 3, 4, 5, 6, 7, 8, 9, undefined);
  t.true(h.subarray(40).equals(Buffer.alloc(8)));
  t.is(h.length, 48);
});
