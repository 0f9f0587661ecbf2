/**
 * The relay (relay/urb-relay.ts + protocol/relay-rules.ts) on in-memory streams: generated valid
 * traffic always passes byte-for-byte; every single-field mutation from the CVE list is refused
 * with the right rule, and nothing after it reaches the other side; the unlink hold answers
 * completed URBs itself and forwards the others.
 */
import test from "ava";
import fc from "fast-check";
import { PassThrough } from "node:stream";
import { UrbRelay, type RelayResult } from "../relay/urb-relay.js";
import { STREAM_BUFFER as RELAY_BUFFER } from "../shared/backpressure.js";
import { encodeToBuffer } from "../protocol/encoder.js";
import { ErrorCode } from "../protocol/errors.js";
import type { ClientMessage, CmdSubmit, RetSubmit, ServerMessage } from "../protocol/messages.js";
import type { DeviceView } from "../protocol/relay-rules.js";
import { encodeAll, urbSession } from "./helpers/session.js";

interface Rig {
  relay: UrbRelay;
  toServer: Buffer[];
  toClient: Buffer[];
  client: PassThrough;
  server: PassThrough;
}

function rig(opts: { device?: DeviceView; unlinkGraceMs?: number; unlinkDeadlineMs?: number } = {}): Rig {
  const clientIn = new PassThrough();
  const clientOut = new PassThrough();
  const serverIn = new PassThrough();
  const serverOut = new PassThrough();
  const toServer: Buffer[] = [];
  const toClient: Buffer[] = [];
  serverOut.on("data", (b: Buffer) => toServer.push(b));
  clientOut.on("data", (b: Buffer) => toClient.push(b));
  const relay = new UrbRelay({ clientIn, clientOut, serverIn, serverOut, ...opts });
  relay.start();
  return { relay, toServer, toClient, client: clientIn, server: serverIn };
}
const tick = () => new Promise((r) => setImmediate(r));
/** Write `stream` in pieces of the sizes in `cuts` (cycled; at most 2000 pieces, then the rest), one per loop turn. */
async function inPieces(stream: Buffer, cuts: number[], into: PassThrough): Promise<void> {
  let p = 0;
  for (let k = 0; p < stream.length; k++) {
    const n = k < 2000 ? cuts[k % cuts.length]! : stream.length;
    into.write(stream.subarray(p, p + n));
    p += n;
    await tick();
  }
}
async function run(r: Rig, client: Buffer, server: Buffer): Promise<RelayResult> {
  r.client.write(client);
  await tick();
  r.server.write(server);
  await tick();
  r.client.end();
  return r.relay.done;
}

/** RET_SUBMITs of generated sessions within the relay's rules (error_count 0..np). */
const validSession = urbSession.map((s) => {
  for (const m of s.server) if (m.kind === "RET_SUBMIT") m.errorCount = Math.min(Math.abs(m.errorCount) % 3, m.numberOfPackets);
  return s;
});

test("generated valid traffic passes unchanged in both directions", async (t) => {
  await fc.assert(
    fc.asyncProperty(validSession, async (s) => {
      const r = rig();
      const c = encodeAll(s.client);
      const sv = encodeAll(s.server);
      const res = await run(r, c, sv);
      t.is(res.violation, undefined, res.violation?.error.message);
      t.true(Buffer.concat(r.toServer).equals(c));
      t.true(Buffer.concat(r.toClient).equals(sv));
    }),
    { numRuns: 150 },
  );
});

const IN64: CmdSubmit = { kind: "CMD_SUBMIT", seqnum: 10, devid: 0x10002, direction: 1, ep: 1, transferFlags: 0, transferBufferLength: 64, startFrame: 0, numberOfPackets: 0, interval: 0, setup: Buffer.alloc(8), payload: [] };
const OUT4: CmdSubmit = { ...IN64, seqnum: 11, direction: 0, ep: 2, transferBufferLength: 4, payload: [Buffer.from("abcd")] };
const ISO: CmdSubmit = { ...IN64, seqnum: 12, ep: 3, numberOfPackets: 2, isoPackets: [{ offset: 0, length: 32, actualLength: 0, status: 0 }, { offset: 32, length: 32, actualLength: 0, status: 0 }] };
const ret = (over: Partial<RetSubmit>): RetSubmit => ({ kind: "RET_SUBMIT", seqnum: 10, devid: 0, direction: 0, ep: 0, status: 0, actualLength: 0, startFrame: 0, numberOfPackets: 0, errorCount: 0, payload: [], ...over });
const patch = (b: Buffer, word: number, v: number) => {
  const c = Buffer.from(b);
  c.writeUInt32BE(v >>> 0, word * 4);
  return c;
};
const GOOD = encodeToBuffer(ret({ seqnum: 10, actualLength: 2, payload: [Buffer.from("ok")] }));
const ISO_RET = ret({ seqnum: 12, actualLength: 3, numberOfPackets: 2, payload: [Buffer.from("abc")], isoPackets: [{ offset: 0, length: 32, actualLength: 1, status: 0 }, { offset: 32, length: 32, actualLength: 2, status: 0 }] });

const hostile: Array<[string, Buffer, string]> = [
  ["oversize actual_length (CVE-2016-3955)", patch(GOOD, 6, 65), ErrorCode.ACTUAL_LENGTH],
  ["number_of_packets on a non-ISO URB (CVE-2026-31607)", patch(GOOD, 8, 64), ErrorCode.PACKET_COUNT],
  ["ISO packet count other than submitted", patch(encodeToBuffer(ISO_RET), 8, 3), ErrorCode.PACKET_COUNT],
  ["ISO offset outside the submitted layout", encodeToBuffer({ ...ISO_RET, isoPackets: [{ offset: 0, length: 32, actualLength: 1, status: 0 }, { offset: 4000, length: 32, actualLength: 2, status: 0 }] }), ErrorCode.ISO_MISMATCH],
  ["ISO actual lengths not summing to actual_length", encodeToBuffer({ ...ISO_RET, isoPackets: [{ offset: 0, length: 32, actualLength: 1, status: 0 }, { offset: 32, length: 32, actualLength: 1, status: 0 }] }), ErrorCode.ISO_SUM],
  ["unknown seqnum", patch(GOOD, 1, 999), ErrorCode.UNKNOWN_SEQNUM],
  ["duplicate seqnum (answered twice)", Buffer.concat([GOOD, GOOD]), ErrorCode.UNKNOWN_SEQNUM],
  ["payload on an OUT RET", Buffer.concat([encodeToBuffer(ret({ seqnum: 11, actualLength: 4 })), Buffer.alloc(48, 0xee)]), ErrorCode.OUT_PAYLOAD_IN_RET],
  ["absurd status", patch(GOOD, 5, -100000), ErrorCode.STATUS_NOT_ALLOWED],
  ["error_count beyond the packets", patch(GOOD, 9, 5), ErrorCode.ERROR_COUNT],
  ["RET_UNLINK for no pending unlink", encodeToBuffer({ kind: "RET_UNLINK", seqnum: 10, devid: 0, direction: 0, ep: 0, status: -104 }), ErrorCode.UNKNOWN_UNLINK],
  ["a CMD in the return stream", encodeToBuffer(IN64), ErrorCode.WRONG_STREAM],
];

for (const [name, bad, code] of hostile) {
  test(`hostile backend: ${name} → ${code}; nothing of it reaches the frontend kernel`, async (t) => {
    const r = rig();
    const cmds = Buffer.concat([IN64, OUT4, ISO].map(encodeToBuffer));
    const res = await run(r, cmds, bad);
    t.is(res.reason, "violation");
    t.is(res.violation?.from, "server");
    t.is(res.violation?.error.code as string | undefined, code);
    t.true(res.violation!.error.offset >= 0 && res.violation!.error.offset <= bad.length);
    // only whole, valid messages that came before the fault could have been forwarded
    const out = Buffer.concat(r.toClient);
    t.true(out.length === 0 || (name.startsWith("duplicate") && out.equals(GOOD)) || (name.startsWith("payload") && out.length === 48));
  });
}

const device: DeviceView = {
  devid: 0x10002,
  endpoint: (ep, dir) => (ep === 1 && dir === 1 ? "bulk" : ep === 2 && dir === 0 ? "bulk" : ep === 3 && dir === 1 ? "iso" : undefined),
};
const ctrl = (wLength: number, tbl: number): CmdSubmit => {
  const setup = Buffer.from([0x80, 6, 0, 1, 0, 0, 0, 0]);
  setup.writeUInt16LE(wLength, 6);
  return { ...IN64, seqnum: 20, ep: 0, transferBufferLength: tbl, setup };
};

const hostileFrontend: Array<[string, Buffer, string]> = [
  ["wrong devid", encodeToBuffer({ ...IN64, devid: 0x10003 }), ErrorCode.WRONG_DEVID],
  ["endpoint not in the configuration", encodeToBuffer({ ...IN64, ep: 5 }), ErrorCode.NO_SUCH_ENDPOINT],
  ["endpoint with the wrong direction", encodeToBuffer({ ...IN64, direction: 0, payload: [Buffer.alloc(64)] }), ErrorCode.NO_SUCH_ENDPOINT],
  ["ep 16 (CVE-2017-16912)", patch(encodeToBuffer(IN64), 4, 16), ErrorCode.BAD_ENDPOINT],
  ["negative length (CVE-2017-16913)", patch(encodeToBuffer(IN64), 6, -8), ErrorCode.NEGATIVE_LENGTH],
  ["huge length (CVE-2017-16913)", patch(encodeToBuffer(IN64), 6, 0x7fffffff), ErrorCode.LENGTH_LIMIT],
  ["ISO packets on a bulk endpoint", patch(encodeToBuffer(IN64), 8, 4), ErrorCode.PACKET_COUNT],
  ["ISO packets summing to non-zero in a CMD", encodeToBuffer({ ...ISO, isoPackets: [{ offset: 0, length: 32, actualLength: 9, status: 0 }, { offset: 32, length: 32, actualLength: 0, status: 0 }] }), ErrorCode.ISO_SUM],
  ["control wLength differing from the length (-EBADR)", encodeToBuffer({ ...ctrl(18, 64), seqnum: 21 }), ErrorCode.CONTROL_LENGTH],
  ["unlink of a never-submitted seqnum", encodeToBuffer({ kind: "CMD_UNLINK", seqnum: 30, devid: 0x10002, direction: 0, ep: 0, unlinkSeqnum: 777 }), ErrorCode.UNKNOWN_VICTIM],
];

for (const [name, bad, code] of hostileFrontend) {
  test(`hostile frontend: ${name} → ${code}; nothing of it reaches usbip-host`, async (t) => {
    const r = rig({ device });
    const res = await run(r, Buffer.concat([encodeToBuffer(ctrl(18, 18)), bad]), Buffer.alloc(0));
    t.is(res.violation?.from, "client");
    t.is(res.violation?.error.code as string | undefined, code);
    t.true(Buffer.concat(r.toServer).length <= 48, "at most the valid control request before it");
  });
}

test("unlink hold: a victim completing meanwhile is answered by the relay (RET_SUBMIT, then RET_UNLINK 0); usbip-host never sees the unlink", async (t) => {
  const r = rig({ device, unlinkGraceMs: 1000 });
  r.client.write(Buffer.concat([encodeToBuffer(IN64), encodeToBuffer({ kind: "CMD_UNLINK", seqnum: 40, devid: 0x10002, direction: 0, ep: 0, unlinkSeqnum: 10 })]));
  await tick();
  t.is(Buffer.concat(r.toServer).length, 48, "only the CMD_SUBMIT went to the server");
  r.server.write(GOOD);
  await tick();
  const out = Buffer.concat(r.toClient);
  t.true(out.subarray(0, GOOD.length).equals(GOOD));
  t.deepEqual([out.readUInt32BE(GOOD.length), out.readUInt32BE(GOOD.length + 4), out.readInt32BE(GOOD.length + 20)], [4, 40, 0]);
  t.is(r.relay.stats.unlinksAnswered, 1);
  t.is(r.relay.table.size, 0);
  r.client.end();
  await r.relay.done;
});

test("unlink hold: a victim still pending after the grace period gets the unlink forwarded", async (t) => {
  const r = rig({ device, unlinkGraceMs: 30 });
  const unlink = encodeToBuffer({ kind: "CMD_UNLINK", seqnum: 41, devid: 0x10002, direction: 0, ep: 0, unlinkSeqnum: 10 });
  r.client.write(Buffer.concat([encodeToBuffer(IN64), unlink]));
  await new Promise((res) => setTimeout(res, 100));
  t.true(Buffer.concat(r.toServer).subarray(48).equals(unlink));
  r.server.write(encodeToBuffer({ kind: "RET_UNLINK", seqnum: 41, devid: 0, direction: 0, ep: 0, status: -104 }));
  await tick();
  t.is(Buffer.concat(r.toClient).readUInt32BE(0), 4);
  t.is(r.relay.table.size, 0, "the victim was answered by the RET_UNLINK");
  r.client.end();
  t.is((await r.relay.done).reason, "client closed");
});

const UNLINK42 = encodeToBuffer({ kind: "CMD_UNLINK", seqnum: 42, devid: 0x10002, direction: 0, ep: 0, unlinkSeqnum: 10 });
const RET_UNLINK42 = (status: number) => encodeToBuffer({ kind: "RET_UNLINK", seqnum: 42, devid: 0, direction: 0, ep: 0, status });
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

test("unlink deadline (frontend): a backend that answers neither the URB nor its unlink gets vhci-hcd its answer from the relay, RET_UNLINK(-ECONNRESET); the late answers are dropped", async (t) => {
  const r = rig({ unlinkDeadlineMs: 30 });
  r.client.write(Buffer.concat([encodeToBuffer(IN64), UNLINK42]));
  await tick();
  t.true(Buffer.concat(r.toServer).subarray(48).equals(UNLINK42), "the unlink went to the backend at once");
  t.is(Buffer.concat(r.toClient).length, 0);
  await sleep(80);
  const out = Buffer.concat(r.toClient);
  t.deepEqual([out.length, out.readUInt32BE(0), out.readUInt32BE(4), out.readInt32BE(20)], [48, 4, 42, -104], "RET_UNLINK(seqnum 42, -ECONNRESET)");
  t.is(r.relay.stats.unlinksTimedOut, 1);
  t.is(r.relay.outstanding, 0, "nothing left for vhci-hcd to wait for");
  // the backend wakes up: its RET_SUBMIT and RET_UNLINK(0) are framed, checked and dropped
  r.server.write(Buffer.concat([GOOD, RET_UNLINK42(0)]));
  await tick();
  t.is(Buffer.concat(r.toClient).length, 48, "nothing more reached vhci-hcd");
  t.is(r.relay.stats.lateAnswersDropped, 2);
  t.deepEqual([r.relay.stats.retSubmit, r.relay.stats.retUnlink], [0, 0]);
  t.is(r.relay.table.size, 0);
  r.client.end();
  t.is((await r.relay.done).reason, "client closed");
});

test("unlink deadline: a victim answered in time (its RET_SUBMIT, or the backend's RET_UNLINK) is never answered by the relay", async (t) => {
  for (const answer of [GOOD, RET_UNLINK42(-104)]) {
    const r = rig({ unlinkDeadlineMs: 30 });
    r.client.write(Buffer.concat([encodeToBuffer(IN64), UNLINK42]));
    await tick();
    r.server.write(answer);
    await sleep(80);
    t.true(Buffer.concat(r.toClient).equals(answer), "the backend's answer, and nothing from the relay");
    t.is(r.relay.stats.unlinksTimedOut, 0);
    r.client.end();
    await r.relay.done;
  }
});

test("unlink deadline: a hostile late answer is still a violation (checked before it is dropped)", async (t) => {
  const r = rig({ unlinkDeadlineMs: 20 });
  r.client.write(Buffer.concat([encodeToBuffer(IN64), UNLINK42]));
  await sleep(60);
  t.is(r.relay.stats.unlinksTimedOut, 1);
  // the late RET_SUBMIT claims more than the URB's 64-byte buffer
  r.server.write(encodeToBuffer(ret({ seqnum: 10, actualLength: 65, payload: [Buffer.alloc(65)] })));
  const res = await r.relay.done;
  t.is(res.reason, "violation");
  t.is(Buffer.concat(r.toClient).length, 48, "only the relay's RET_UNLINK reached vhci-hcd");
});

test("the relay re-encodes: a non-ISO number_of_packets of 0xffffffff reaches usbip-host as 0", async (t) => {
  const r = rig({ device });
  const res = await run(r, patch(encodeToBuffer(IN64), 8, -1), Buffer.alloc(0));
  t.is(res.violation, undefined);
  t.is(Buffer.concat(r.toServer).readInt32BE(32), 0);
});

test("the relay re-encodes: a RET_SUBMIT's padding bytes that are not zero reach vhci-hcd as zeros, the rest as sent", async (t) => {
  const r = rig({ device });
  const wire = encodeToBuffer(ret({ seqnum: 10, actualLength: 64, payload: [Buffer.alloc(64, 0x3c)] }));
  wire.fill(0xee, 40, 48);
  const res = await run(r, encodeToBuffer(IN64), wire);
  t.is(res.violation, undefined);
  const got = Buffer.concat(r.toClient);
  t.is(got.length, wire.length);
  t.true(got.subarray(40, 48).equals(Buffer.alloc(8)));
  t.true(got.subarray(0, 40).equals(wire.subarray(0, 40)) && got.subarray(48).equals(wire.subarray(48)));
});

// the message kinds are typed: keep the imports used
export type _Kinds = ClientMessage | ServerMessage;

test("backpressure: the input pauses only when over RELAY_BUFFER waits for the other side, and resumes when it drains", async (t) => {
  const clientIn = new PassThrough();
  const clientOut = new PassThrough(); // nobody reads it yet: a slow frontend kernel
  const serverIn = new PassThrough();
  const serverOut = new PassThrough();
  serverOut.resume();
  const relay = new UrbRelay({ clientIn, clientOut, serverIn, serverOut });
  relay.start();
  const N = 40;
  const big = (seqnum: number): CmdSubmit => ({ ...IN64, seqnum, transferBufferLength: 65536 });
  clientIn.write(Buffer.concat(Array.from({ length: N }, (_, i) => encodeToBuffer(big(i + 1)))));
  await tick();
  const payload = Buffer.alloc(65536, 0x5a);
  const rets = Array.from({ length: N }, (_, i) => encodeToBuffer(ret({ seqnum: i + 1, actualLength: 65536, payload: [payload] })));
  // 8 URBs (512 KiB) waiting is far above the output's 16 KiB high-water mark but within RELAY_BUFFER
  for (const r of rets.slice(0, 8)) serverIn.write(r);
  await tick();
  t.true(clientOut.writableLength > 16 * 1024);
  t.false(serverIn.isPaused(), "paused below RELAY_BUFFER");
  for (const r of rets.slice(8)) serverIn.write(r);
  await tick();
  t.true(serverIn.isPaused(), "not paused above RELAY_BUFFER");
  t.true(clientOut.writableLength > RELAY_BUFFER && clientOut.writableLength < RELAY_BUFFER + 2 * 65584);
  // the frontend reads: everything arrives, in order and intact
  const got: Buffer[] = [];
  clientOut.on("data", (b: Buffer) => got.push(b));
  const all = Buffer.concat(rets);
  for (let i = 0; i < 100 && Buffer.concat(got).length < all.length; i++) await tick();
  t.true(Buffer.concat(got).equals(all));
  t.is(relay.stats.retSubmit, N);
  relay.stop();
});

// ---- cut-through of large bulk/interrupt RET_SUBMITs --------------------------------------
const BULK64K: CmdSubmit = { ...IN64, seqnum: 30, transferBufferLength: 65536 };
const bigPayload = Buffer.from(Array.from({ length: 65536 }, (_, i) => (i * 13) & 0xff));

test("cut-through: a large bulk RET's header and payload so far reach the frontend before the rest has arrived", async (t) => {
  const r = rig();
  r.client.write(encodeToBuffer(BULK64K));
  await tick();
  const whole = encodeToBuffer(ret({ seqnum: 30, actualLength: 65536, payload: [bigPayload] }));
  r.server.write(whole.subarray(0, 48 + 20_000));
  await tick();
  const early = Buffer.concat(r.toClient);
  t.is(early.length, 48 + 20_000);
  t.true(early.equals(whole.subarray(0, 48 + 20_000)));
  t.is(r.relay.stats.retSubmit, 0, "not counted before it is whole");
  r.server.write(whole.subarray(48 + 20_000, 48 + 40_000));
  await tick();
  t.is(Buffer.concat(r.toClient).length, 48 + 40_000);
  r.server.write(whole.subarray(48 + 40_000));
  await tick();
  t.true(Buffer.concat(r.toClient).equals(whole));
  t.is(r.relay.stats.retSubmit, 1);
  r.relay.stop();
});

const partialHostile: Array<[string, (b: Buffer) => Buffer, string]> = [
  ["actual_length beyond the buffer", (b) => patch(b, 6, 70_000), ErrorCode.ACTUAL_LENGTH],
  ["absurd status", (b) => patch(b, 5, -100000), ErrorCode.STATUS_NOT_ALLOWED],
  ["unknown seqnum", (b) => patch(b, 1, 31), ErrorCode.UNKNOWN_SEQNUM],
  ["number_of_packets on a bulk URB", (b) => patch(b, 8, 3), ErrorCode.PACKET_COUNT],
];
for (const [name, mutate, code] of partialHostile) {
  test(`cut-through: a large RET whose header breaks a rule (${name}) is refused before any of it is forwarded`, async (t) => {
    const r = rig();
    r.client.write(encodeToBuffer(BULK64K));
    await tick();
    const whole = encodeToBuffer(ret({ seqnum: 30, actualLength: 65536, payload: [bigPayload] }));
    r.server.write(mutate(whole).subarray(0, 48 + 20_000)); // the rest never comes
    const res = await r.relay.done;
    t.is(res.violation?.error.code as string | undefined, code);
    t.is(Buffer.concat(r.toClient).length, 0);
  });
}

test("cut-through: control and ISO RETs, and small bulk RETs, are forwarded only when whole", async (t) => {
  const r = rig();
  const ctl: CmdSubmit = { ...IN64, seqnum: 40, ep: 0, transferBufferLength: 65535, setup: Buffer.from([0x80, 6, 0, 2, 0, 0, 0xff, 0xff]) };
  const small: CmdSubmit = { ...IN64, seqnum: 41, transferBufferLength: 65536 };
  const isoBig: CmdSubmit = { ...IN64, seqnum: 42, ep: 3, transferBufferLength: 65536, numberOfPackets: 2, isoPackets: [{ offset: 0, length: 32768, actualLength: 0, status: 0 }, { offset: 32768, length: 32768, actualLength: 0, status: 0 }] };
  r.client.write(Buffer.concat([ctl, small, isoBig].map(encodeToBuffer)));
  await tick();
  const rets = [
    encodeToBuffer(ret({ seqnum: 40, actualLength: 40_000, payload: [bigPayload.subarray(0, 40_000)] })),
    encodeToBuffer(ret({ seqnum: 41, actualLength: 16 * 1024, payload: [bigPayload.subarray(0, 16 * 1024)] })),
    encodeToBuffer(ret({ seqnum: 42, actualLength: 65536, numberOfPackets: 2, payload: [bigPayload], isoPackets: [{ offset: 0, length: 32768, actualLength: 32768, status: 0 }, { offset: 32768, length: 32768, actualLength: 32768, status: 0 }] })),
  ];
  let sent = 0;
  for (const m of rets) {
    r.server.write(m.subarray(0, m.length - 1));
    await tick();
    t.is(Buffer.concat(r.toClient).length, sent, "forwarded before it was whole");
    r.server.write(m.subarray(m.length - 1));
    await tick();
    sent += m.length;
    t.is(Buffer.concat(r.toClient).length, sent);
  }
  t.true(Buffer.concat(r.toClient).equals(Buffer.concat(rets)));
  r.relay.stop();
});

test("cut-through: any split of a stream of large and small RETs comes out byte-identical (property)", async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 65536 }), { minLength: 1, maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 12 }), async (lengths, cuts) => {
      const r = rig();
      r.client.write(Buffer.concat(lengths.map((_, i) => encodeToBuffer({ ...BULK64K, seqnum: 100 + i }))));
      await tick();
      const stream = Buffer.concat(lengths.map((n, i) => encodeToBuffer(ret({ seqnum: 100 + i, actualLength: n, payload: n > 0 ? [bigPayload.subarray(0, n)] : [] }))));
      await inPieces(stream, cuts, r.server);
      t.true(Buffer.concat(r.toClient).equals(stream));
      t.is(r.relay.stats.retSubmit, lengths.length);
      r.relay.stop();
    }),
    { numRuns: 60 },
  );
});

test("a frontend asking for more than 128 MiB of transfer buffers in flight is refused before the backend kernel sees the excess", async (t) => {
  const r = rig({ device });
  const big = (seqnum: number) => encodeToBuffer({ ...IN64, seqnum, transferBufferLength: 16 * 1024 * 1024 });
  r.client.write(Buffer.concat(Array.from({ length: 9 }, (_, i) => big(i + 1))));
  const res = await r.relay.done;
  t.is(res.violation?.from, "client");
  t.is(res.violation?.error.code, ErrorCode.TOO_MANY_OUTSTANDING);
  t.is(res.violation?.error.offset, 8 * 48 + 24);
  t.is(Buffer.concat(r.toServer).length, 0, "the chunk with the fault is not forwarded");
  t.is(r.relay.stats.cmdSubmit, 8);
});

// ---- cut-through of large bulk/interrupt OUT CMD_SUBMITs -------------------------------------
const OUT64K = (seqnum: number, over: Partial<CmdSubmit> = {}): Buffer => encodeToBuffer({ ...OUT4, seqnum, transferBufferLength: 65536, payload: [bigPayload], ...over });

test("cut-through: a large bulk OUT CMD's header and payload so far reach the backend before the rest has arrived", async (t) => {
  const r = rig({ device });
  const whole = OUT64K(50);
  r.client.write(whole.subarray(0, 48 + 30_000));
  await tick();
  t.true(Buffer.concat(r.toServer).equals(whole.subarray(0, 48 + 30_000)));
  t.is(r.relay.stats.cmdSubmit, 0, "not counted before it is whole");
  r.client.write(whole.subarray(48 + 30_000));
  await tick();
  t.true(Buffer.concat(r.toServer).equals(whole));
  t.is(r.relay.stats.cmdSubmit, 1);
  r.relay.stop();
});

const partialCmdHostile: Array<[string, Buffer | (() => Buffer[]), string]> = [
  ["the devid of another device", OUT64K(51, { devid: 0x20003 }), ErrorCode.WRONG_DEVID],
  ["an OUT endpoint the device lacks", OUT64K(51, { ep: 1 }), ErrorCode.NO_SUCH_ENDPOINT],
  ["a seqnum already in flight", () => [encodeToBuffer({ ...IN64, seqnum: 51 }), OUT64K(51)], ErrorCode.DUPLICATE_SEQNUM],
  ["more transfer buffers in flight than the cap", () => [...Array.from({ length: 8 }, (_, i) => encodeToBuffer({ ...IN64, seqnum: 60 + i, transferBufferLength: 16 * 1024 * 1024 })), OUT64K(51)], ErrorCode.TOO_MANY_OUTSTANDING],
];
for (const [name, bytes, code] of partialCmdHostile) {
  test(`cut-through: a large OUT CMD whose header breaks a rule (${name}) is refused before any of it is forwarded`, async (t) => {
    const r = rig({ device });
    const parts = typeof bytes === "function" ? bytes() : [bytes];
    const before = parts.slice(0, -1);
    const last = parts[parts.length - 1]!;
    if (before.length > 0) {
      r.client.write(Buffer.concat(before));
      await tick();
    }
    const sentBefore = Buffer.concat(r.toServer).length;
    r.client.write(last.subarray(0, 48 + 30_000)); // the rest never comes
    const res = await r.relay.done;
    t.is(res.violation?.from, "client");
    t.is(res.violation?.error.code as string | undefined, code);
    t.is(Buffer.concat(r.toServer).length, sentBefore);
  });
}

test("cut-through: an unlink whose hold ends while a large OUT CMD is passing waits until that CMD is whole", async (t) => {
  const r = rig({ device, unlinkGraceMs: 20 });
  const victim = encodeToBuffer({ ...IN64, seqnum: 70 });
  const unlink = encodeToBuffer({ kind: "CMD_UNLINK", seqnum: 71, devid: 0x10002, direction: 0, ep: 0, unlinkSeqnum: 70 });
  const big = OUT64K(72);
  r.client.write(Buffer.concat([victim, unlink, big.subarray(0, 48 + 1000)]));
  await new Promise((res) => setTimeout(res, 60)); // the hold (20 ms) ends meanwhile
  t.true(Buffer.concat(r.toServer).equals(Buffer.concat([victim, big.subarray(0, 48 + 1000)])), "the unlink went into the middle of a CMD");
  r.client.write(big.subarray(48 + 1000));
  await tick();
  t.true(Buffer.concat(r.toServer).equals(Buffer.concat([victim, big, unlink])));
  r.relay.stop();
});

test("cut-through: any split of a client stream of large OUT and other CMDs comes out byte-identical (property)", async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 65536 })), { minLength: 1, maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 12 }), async (cmds, cuts) => {
      const r = rig({ device });
      const stream = Buffer.concat(cmds.map(([out, n], i) => (out ? OUT64K(200 + i, { transferBufferLength: n, payload: n > 0 ? [bigPayload.subarray(0, n)] : [] }) : encodeToBuffer({ ...IN64, seqnum: 200 + i, transferBufferLength: n }))));
      await inPieces(stream, cuts, r.client);
      t.true(Buffer.concat(r.toServer).equals(stream));
      t.is(r.relay.stats.cmdSubmit, cmds.length);
      r.relay.stop();
    }),
    { numRuns: 60 },
  );
});

test("cut-through: a peer sending one byte at a time costs linear work (1-byte chunks of 64 KiB messages, both directions)", async (t) => {
  // each chunk is pumped on its own; asking the decoders for the whole payload so far after every
  // chunk made this quadratic (about 2·10^9 segment visits: minutes instead of a moment)
  const r = rig({ device });
  const out = OUT64K(80);
  for (let i = 0; i < out.length; i++) r.client.write(out.subarray(i, i + 1));
  await tick();
  t.true(Buffer.concat(r.toServer).equals(out));
  r.client.write(encodeToBuffer({ ...BULK64K, seqnum: 81 }));
  await tick();
  const back = encodeToBuffer(ret({ seqnum: 81, actualLength: 65536, payload: [bigPayload] }));
  for (let i = 0; i < back.length; i++) r.server.write(back.subarray(i, i + 1));
  await tick();
  t.true(Buffer.concat(r.toClient).equals(back));
  t.is(r.relay.stats.cmdSubmit, 2);
  t.is(r.relay.stats.retSubmit, 1);
  r.relay.stop();
});

test("client hand-over: answers to what the old client left outstanding are checked and dropped; the new client gets its own", async (t) => {
  const r = rig();
  const A = { ...IN64, seqnum: 40, ep: 0, setup: Buffer.from("8006000100004000", "hex"), transferBufferLength: 64 };
  r.client.write(encodeToBuffer(A));
  await tick();
  t.is(r.relay.outstanding, 1);
  t.true(r.relay.detachClient());
  t.is(r.relay.outstanding, 0, "the old client's URB is orphaned");
  const client2 = new PassThrough();
  const out2 = new PassThrough();
  const toClient2: Buffer[] = [];
  out2.on("data", (b: Buffer) => toClient2.push(b));
  r.relay.attachClient(client2, out2);
  const B = { ...A, seqnum: 41 };
  client2.write(encodeToBuffer(B));
  await tick();
  const retA = encodeToBuffer(ret({ seqnum: 40, actualLength: 18, payload: [Buffer.alloc(18, 1)] }));
  const retB = encodeToBuffer(ret({ seqnum: 41, actualLength: 18, payload: [Buffer.alloc(18, 2)] }));
  r.server.write(Buffer.concat([retA, retB]));
  await tick();
  t.true(Buffer.concat(r.toServer).equals(Buffer.concat([encodeToBuffer(A), encodeToBuffer(B)])), "both submits reached the backend");
  t.is(r.toClient.length, 0, "nothing more reached the old client");
  t.true(Buffer.concat(toClient2).equals(retB), "the new client got only its own answer");
  t.is(r.relay.table.size, 0);
  client2.end();
  t.is((await r.relay.done).reason, "client closed");
});

test("client hand-over: a hostile answer to an orphaned URB is still a violation", async (t) => {
  const r = rig();
  r.client.write(encodeToBuffer(IN64));
  await tick();
  t.true(r.relay.detachClient());
  r.relay.attachClient(new PassThrough(), new PassThrough());
  r.server.write(patch(GOOD, 6, 65)); // actual_length above the 64 submitted
  const res = await r.relay.done;
  t.is(res.reason, "violation");
  t.is(res.violation?.error.code as string | undefined, ErrorCode.ACTUAL_LENGTH);
});

test("client hand-over is refused while a message passes cut-through, and after the relay ended", async (t) => {
  const r = rig();
  const big = { ...IN64, transferBufferLength: 64 * 1024 };
  r.client.write(encodeToBuffer(big));
  await tick();
  const whole = encodeToBuffer(ret({ seqnum: 10, actualLength: 64 * 1024, payload: [Buffer.alloc(64 * 1024, 7)] }));
  r.server.write(whole.subarray(0, 48 + 32 * 1024)); // header + half the payload: passing cut-through
  await tick();
  t.false(r.relay.detachClient());
  r.server.write(whole.subarray(48 + 32 * 1024));
  await tick();
  t.true(Buffer.concat(r.toClient).equals(whole));
  r.relay.stop();
  t.false(r.relay.detachClient());
});

test("clientIdleMs counts from the first look after the client's last message (no clock read per chunk)", async (t) => {
  const r = rig();
  const t0 = Date.now() + 60_000;
  t.is(r.relay.clientIdleMs(t0), 0, "attached since the last look: active now");
  t.is(r.relay.clientIdleMs(t0 + 1_000), 1_000);
  r.client.write(encodeToBuffer(IN64));
  await tick();
  t.is(r.relay.clientIdleMs(t0 + 2_000), 0, "a message since the last look: active now");
  t.is(r.relay.clientIdleMs(t0 + 12_000), 10_000);
  t.is(r.relay.clientIdleMs(t0 + 13_000), 11_000, "silent: the idle time grows");
  r.relay.stop();
});
