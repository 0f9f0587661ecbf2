/**
 * relay/mutator.ts: the --fuzz argument, seeded and reproducible mutations, each field landing at
 * its wire offset and nowhere else, the rate, drops and duplicates, descriptor bytes of a control
 * answer, and a recorded list replayed byte for byte (whole or in part: shrinking).
 */
import test from "ava";
import fc from "fast-check";
import { encode } from "../protocol/encoder.js";
import type { CmdSubmit, RetSubmit } from "../protocol/messages.js";
import { formatMutation, FUZZ_FIELDS, Mutator, parseFuzzSpec, parseMutations, type FuzzField, type MessageFacts } from "../relay/mutator.js";

const CONFIG = Buffer.from([9, 2, 25, 0, 1, 1, 0, 0x80, 50, 9, 4, 0, 0, 1, 8, 6, 80, 0, 7, 5, 0x81, 2, 0, 2, 0]);

function ret(seqnum: number, over: Partial<RetSubmit> = {}): RetSubmit {
  return { kind: "RET_SUBMIT", seqnum, devid: 0, direction: 0, ep: 0, status: 0, actualLength: 0, startFrame: 0, numberOfPackets: 0, errorCount: 0, payload: [], ...over };
}
const wire = (m: RetSubmit | CmdSubmit) => Buffer.concat(encode(m));
const IN_DATA = ret(7, { actualLength: 25, payload: [CONFIG] });
const ISO = ret(8, { actualLength: 8, numberOfPackets: 2, payload: [Buffer.alloc(8, 0x11)], isoPackets: [{ offset: 0, length: 4, actualLength: 4, status: 0 }, { offset: 4, length: 4, actualLength: 4, status: 0 }] });
const CMD: CmdSubmit = { kind: "CMD_SUBMIT", seqnum: 9, devid: 0x10002, direction: 0, ep: 2, transferFlags: 0, transferBufferLength: 4, startFrame: 0, numberOfPackets: 0, interval: 0, setup: Buffer.alloc(8), payload: [Buffer.from("abcd")] };
const facts = (kind: MessageFacts["kind"], payloadLength: number, packets = 0, setup?: Buffer): MessageFacts => ({ kind, payloadLength, packets, ...(setup ? { setup } : {}) });
const GET_CONFIG = Buffer.from([0x80, 6, 0, 2, 0, 0, 255, 0]);

/** The byte offsets where two buffers differ. */
function diff(a: Buffer, b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) out.push(i);
  return out;
}

test("parseFuzzSpec: seed, rate, fields; each mistake is one usage error naming it", (t) => {
  t.deepEqual(parseFuzzSpec("42"), { seed: 42, rate: 0.05, fields: FUZZ_FIELDS });
  t.deepEqual(parseFuzzSpec("7,rate=0.5,fields=status+drop"), { seed: 7, rate: 0.5, fields: ["status", "drop"] });
  t.throws(() => parseFuzzSpec("x"), { message: /the seed must be a number/ });
  t.throws(() => parseFuzzSpec("1,rate=2"), { message: /rate must be 0\.\.1/ });
  t.throws(() => parseFuzzSpec("1,fields=status+bogus"), { message: /unknown field bogus/ });
  t.throws(() => parseFuzzSpec("1,speed=3"), { message: /unknown option "speed"/ });
});

test("the same seed mutates the same messages the same way; another seed does not", (t) => {
  const run = (seed: number) => {
    const m = new Mutator({ seed, rate: 0.3, fields: FUZZ_FIELDS });
    const out = Array.from({ length: 200 }, (_, i) => Buffer.concat(m.mutate(wire(ret(i, { actualLength: 25, payload: [CONFIG] })), facts("RET_SUBMIT", 25, 0, GET_CONFIG))));
    return { out, log: m.log };
  };
  const a = run(1);
  const b = run(1);
  t.deepEqual(a.log, b.log);
  t.deepEqual(a.out, b.out);
  t.notDeepEqual(run(2).log, a.log);
  t.true(a.log.length > 30 && a.log.length < 90, `${a.log.length} of 200 mutated at rate 0.3`);
});

test("rate 0 passes every message untouched; rate 1 mutates every one and logs each", (t) => {
  const none = new Mutator({ seed: 5, rate: 0, fields: FUZZ_FIELDS });
  for (let i = 0; i < 50; i++) t.deepEqual(none.mutate(wire(IN_DATA), facts("RET_SUBMIT", 25)), [wire(IN_DATA)]);
  t.is(none.log.length, 0);
  const all = new Mutator({ seed: 5, rate: 1, fields: ["status"] });
  for (let i = 0; i < 50; i++) t.notDeepEqual(all.mutate(wire(IN_DATA), facts("RET_SUBMIT", 25))[0], wire(IN_DATA));
  t.is(all.log.length, 50);
  t.true(all.log.every((m, i) => m.n === i && m.seqnum === 7 && m.field === "status" && m.from === "0x0" && m.to !== m.from));
});

test("each word field lands at its offset only, as logged (RET_SUBMIT)", (t) => {
  const AT: Partial<Record<FuzzField, number>> = { seqnum: 4, direction: 12, ep: 16, status: 20, actual_length: 24, start_frame: 28, number_of_packets: 32, error_count: 36 };
  for (const [field, at] of Object.entries(AT) as Array<[FuzzField, number]>) {
    const m = new Mutator({ seed: 3, rate: 1, fields: [field] });
    const before = wire(IN_DATA);
    const [after] = m.mutate(before, facts("RET_SUBMIT", 25));
    const changed = diff(before, after!);
    t.true(changed.length > 0 && changed.every((i) => i >= at && i < at + 4), `${field}: bytes ${changed.join(",")}`);
    t.is(m.log[0]!.to, `0x${after!.readUInt32BE(at).toString(16)}`);
    t.is(m.log[0]!.from, `0x${before.readUInt32BE(at).toString(16)}`);
  }
});

test("fields a message does not have are never chosen: no status in a CMD_SUBMIT, no iso without descriptors, no descriptor bytes outside a GET_DESCRIPTOR answer", (t) => {
  const m = new Mutator({ seed: 9, rate: 1, fields: ["status", "error_count", "iso", "descriptor"] });
  for (let i = 0; i < 20; i++) t.deepEqual(m.mutate(wire(CMD), facts("CMD_SUBMIT", 4)), [wire(CMD)]);
  for (let i = 0; i < 20; i++) m.mutate(wire(IN_DATA), facts("RET_SUBMIT", 25)); // no setup known
  t.true(m.log.every((x) => x.field === "status" || x.field === "error_count"), JSON.stringify(m.log.map((x) => x.field)));
  const cmd = new Mutator({ seed: 9, rate: 1, fields: ["transfer_flags", "actual_length"] });
  const [out] = cmd.mutate(wire(CMD), facts("CMD_SUBMIT", 4));
  t.true(diff(wire(CMD), out!).every((i) => i >= 20 && i < 28), "transfer_flags / transfer_buffer_length of a CMD_SUBMIT");
});

test("iso: one descriptor word of one packet, after the payload", (t) => {
  const m = new Mutator({ seed: 11, rate: 1, fields: ["iso"] });
  const before = wire(ISO);
  for (let k = 0; k < 30; k++) {
    const [after] = m.mutate(before, facts("RET_SUBMIT", 8, 2));
    const changed = diff(before, after!);
    const base = 48 + 8;
    t.true(changed.length > 0 && changed.every((i) => i >= base && i < base + 32 && (i - base) % 16 < 12), `bytes ${changed.join(",")}`);
    t.regex(m.log.at(-1)!.to, /^packet [01] word [012] = 0x[0-9a-f]+$/);
  }
});

test("descriptor: a byte of the GET_DESCRIPTOR answer's payload (bLength, wTotalLength, bNumEndpoints, …), never the header", (t) => {
  const m = new Mutator({ seed: 13, rate: 1, fields: ["descriptor"] });
  const before = wire(IN_DATA);
  const hit = new Set<number>();
  for (let k = 0; k < 200; k++) {
    const [after] = m.mutate(before, facts("RET_SUBMIT", 25, 0, GET_CONFIG));
    const changed = diff(before, after!);
    t.is(changed.length, 1);
    hit.add(changed[0]! - 48);
  }
  // bLength, bDescriptorType, wTotalLength, bNumInterfaces, the interface's bLength and
  // bNumEndpoints, the endpoint's bLength and wMaxPacketSize
  t.deepEqual([...hit].sort((a, b) => a - b), [0, 1, 2, 3, 4, 9, 13, 18, 22, 23]);
});

test("truncate, drop, duplicate: fewer bytes, nothing, the message twice", (t) => {
  const cut = new Mutator({ seed: 1, rate: 1, fields: ["truncate"] });
  const [short] = cut.mutate(wire(IN_DATA), facts("RET_SUBMIT", 25));
  t.true(short!.length < wire(IN_DATA).length);
  t.deepEqual(short, wire(IN_DATA).subarray(0, short!.length));
  t.deepEqual(new Mutator({ seed: 1, rate: 1, fields: ["drop"] }).mutate(wire(IN_DATA), facts("RET_SUBMIT", 25)), []);
  t.deepEqual(new Mutator({ seed: 1, rate: 1, fields: ["duplicate"] }).mutate(wire(IN_DATA), facts("RET_SUBMIT", 25)), [wire(IN_DATA), wire(IN_DATA)]);
});

test("property: a recorded run replays byte for byte, and any part of its log replays just those messages", (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.double({ min: 0, max: 1, noNaN: true }), fc.subarray([...FUZZ_FIELDS], { minLength: 1 }), fc.array(fc.boolean(), { minLength: 60, maxLength: 60 }), (seed, rate, fields, keep) => {
      const msgs = Array.from({ length: 60 }, (_, i) => (i % 3 === 0 ? { w: wire(ISO), f: facts("RET_SUBMIT", 8, 2) } : { w: wire(ret(i, { actualLength: 25, payload: [CONFIG] })), f: facts("RET_SUBMIT", 25, 0, GET_CONFIG) }));
      const rec = new Mutator({ seed, rate, fields });
      const out = msgs.map((m) => rec.mutate(m.w, m.f));
      const again = new Mutator({ seed: 0, rate: 0, fields }, { plan: rec.log });
      t.deepEqual(msgs.map((m) => again.mutate(m.w, m.f)), out);
      t.deepEqual(again.log, rec.log);
      const part = rec.log.filter((_, i) => keep[i]);
      const shrunk = new Mutator({ seed: 0, rate: 0, fields }, { plan: part });
      const got = msgs.map((m) => shrunk.mutate(m.w, m.f));
      const kept = new Set(part.map((m) => m.n));
      msgs.forEach((m, i) => t.deepEqual(got[i], kept.has(i) ? out[i] : [m.w]));
    }),
    { numRuns: Number(process.env.FC_RUNS ?? 100) },
  );
});

test("the log's lines parse back into the mutations (what --fuzz-replay reads), other lines skipped", (t) => {
  const m = new Mutator({ seed: 21, rate: 1, fields: FUZZ_FIELDS });
  for (let i = 0; i < 40; i++) m.mutate(i % 2 ? wire(ISO) : wire(IN_DATA), i % 2 ? facts("RET_SUBMIT", 8, 2) : facts("RET_SUBMIT", 25, 0, GET_CONFIG));
  const text = ["usbip-qrexec import: fuzz: seed 21, rate 1, fields all", ...m.log.map((x) => `usbip-qrexec import: warning: ${formatMutation(x)}`), "usbip-qrexec import: something else"].join("\n");
  t.deepEqual(parseMutations(text), m.log);
  t.deepEqual(parseMutations("fuzz: message 3 (seqnum 4) bogus: 0x0 -> 0x1\n"), [], "an unknown field is not a mutation");
});
