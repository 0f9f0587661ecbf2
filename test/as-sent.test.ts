/**
 * trace/as-sent.ts: a mutated message read back as sent. Whatever the mutator did (every field,
 * any seed), the message read back encodes to exactly the bytes sent when none were cut, and to
 * the bytes sent up to the cut when the mutator cut it short; a cut header keeps the honest
 * words past the cut.
 */
import test from "ava";
import fc from "fast-check";
import { UrbCommand } from "../protocol/constants.js";
import { encode } from "../protocol/encoder.js";
import { encodeIsoPackets } from "../protocol/iso.js";
import type { CmdSubmit, CmdUnlink, RetSubmit, RetUnlink, UrbMessage } from "../protocol/messages.js";
import { FUZZ_FIELDS, Mutator, type MessageFacts } from "../relay/mutator.js";
import { writeUrbHeader } from "../protocol/urb-header.js";
import { asSent } from "../trace/as-sent.js";

/**
 * Every field of `m` written where the wire has it, whatever the values (the encoder refuses
 * messages whose words disagree with their payload: a mutated one does on purpose).
 */
function raw(m: UrbMessage): Buffer {
  switch (m.kind) {
    case "CMD_SUBMIT":
      return Buffer.concat([writeUrbHeader(UrbCommand.CMD_SUBMIT, m.seqnum, m.devid, m.direction, m.ep, m.transferFlags, m.transferBufferLength, m.startFrame, m.numberOfPackets, m.interval, m.setup), ...m.payload, encodeIsoPackets(m.isoPackets ?? [])]);
    case "RET_SUBMIT":
      return Buffer.concat([writeUrbHeader(UrbCommand.RET_SUBMIT, m.seqnum, m.devid, m.direction, m.ep, m.status, m.actualLength, m.startFrame, m.numberOfPackets, m.errorCount, undefined), ...m.payload, encodeIsoPackets(m.isoPackets ?? [])]);
    case "CMD_UNLINK":
      return writeUrbHeader(UrbCommand.CMD_UNLINK, m.seqnum, m.devid, m.direction, m.ep, m.unlinkSeqnum, 0, 0, 0, 0, undefined);
    case "RET_UNLINK":
      return writeUrbHeader(UrbCommand.RET_UNLINK, m.seqnum, m.devid, m.direction, m.ep, m.status, 0, 0, 0, 0, undefined);
  }
}

const CONFIG = Buffer.from([9, 2, 25, 0, 1, 1, 0, 0x80, 50, 9, 4, 0, 0, 1, 8, 6, 80, 0, 7, 5, 0x81, 2, 0, 2, 0]);
const ret = (over: Partial<RetSubmit>): RetSubmit => ({ kind: "RET_SUBMIT", seqnum: 7, devid: 0, direction: 0, ep: 0, status: 0, actualLength: 0, startFrame: 0, numberOfPackets: 0, errorCount: 0, payload: [], ...over });
const MESSAGES: Array<{ m: UrbMessage; facts: MessageFacts }> = [
  { m: ret({ actualLength: 25, payload: [CONFIG] }), facts: { kind: "RET_SUBMIT", payloadLength: 25, packets: 0, setup: Buffer.from([0x80, 6, 0, 2, 0, 0, 255, 0]) } },
  { m: ret({ actualLength: 8, numberOfPackets: 2, payload: [Buffer.alloc(8, 0x11)], isoPackets: [{ offset: 0, length: 4, actualLength: 4, status: 0 }, { offset: 4, length: 4, actualLength: 4, status: 0 }] }), facts: { kind: "RET_SUBMIT", payloadLength: 8, packets: 2 } },
  { m: { kind: "CMD_SUBMIT", seqnum: 9, devid: 0x10002, direction: 0, ep: 2, transferFlags: 0, transferBufferLength: 4, startFrame: 0, numberOfPackets: 0, interval: 0, setup: Buffer.alloc(8), payload: [Buffer.from("abcd")] } satisfies CmdSubmit, facts: { kind: "CMD_SUBMIT", payloadLength: 4, packets: 0 } },
  { m: { kind: "CMD_UNLINK", seqnum: 10, devid: 0x10002, direction: 0, ep: 0, unlinkSeqnum: 9 } satisfies CmdUnlink, facts: { kind: "CMD_UNLINK", payloadLength: 0, packets: 0 } },
  { m: { kind: "RET_UNLINK", seqnum: 10, devid: 0, direction: 0, ep: 0, status: -104 } satisfies RetUnlink, facts: { kind: "RET_UNLINK", payloadLength: 0, packets: 0 } },
];

test("every mutation, read back as sent, encodes to the bytes sent (up to the cut when cut short)", (t) => {
  let cut = 0;
  let whole = 0;
  fc.assert(
    fc.property(fc.nat(), fc.constantFrom(...FUZZ_FIELDS), fc.nat({ max: MESSAGES.length - 1 }), (seed, field, which) => {
      const { m, facts } = MESSAGES[which]!;
      const wire = Buffer.concat(encode(m));
      for (const sent of new Mutator({ seed, rate: 1, fields: [field] }).mutate(wire, facts)) {
        const back = raw(asSent(sent, m, wire));
        if (sent.length === wire.length) {
          whole++;
          if (!back.equals(sent)) return false;
        } else {
          cut++;
          // cut short: the bytes sent are the start of what was read back (the whole iso descriptors
          // sent, none cut), a header cut short is completed by the honest message's words
          if (!back.subarray(0, Math.min(sent.length, back.length)).equals(sent.subarray(0, back.length)) || back.length < Math.min(48, wire.length)) return false;
          if (sent.length < 48 && !back.subarray(sent.length, 48).equals(wire.subarray(sent.length, 48))) return false;
        }
      }
      return true;
    }),
    { numRuns: 2000 },
  );
  t.true(whole > 0 && cut > 0, `both kinds met: ${whole} whole, ${cut} cut`);
});

test("a mutated RET_SUBMIT reads back with the mutated words and the honest framing", (t) => {
  const m = MESSAGES[0]!.m as RetSubmit;
  const wire = Buffer.concat(encode(m));
  const sent = Buffer.from(wire);
  sent.writeInt32BE(-71, 20); // status
  sent.writeUInt32BE(4096, 24); // actual_length: more than was sent
  sent[48] = 0xee; // payload byte 0
  const back = asSent(sent, m, wire);
  t.like(back, { kind: "RET_SUBMIT", seqnum: 7, status: -71, actualLength: 4096 });
  t.deepEqual(back.payload, [Buffer.concat([Buffer.from([0xee]), CONFIG.subarray(1)])]);
});
