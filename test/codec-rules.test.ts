/**
 * Every validation rule: the stable code, the byte offset of the offending field, the messages
 * before the fault still delivered, and limits enforced before the payload is buffered.
 */
import test from "ava";
import { ClientStreamDecoder, type ClientDecoderOptions } from "../protocol/client-decoder.js";
import { ServerStreamDecoder, type ServerDecoderOptions } from "../protocol/server-decoder.js";
import { ErrorCode } from "../protocol/errors.js";
import { scanHandshake } from "../protocol/handshake.js";
import { UrbTable } from "../protocol/urb-table.js";
import { encodeToBuffer } from "../protocol/encoder.js";
import type { CmdSubmit, RetSubmit, IsoPacket } from "../protocol/messages.js";

function cmd(over: Partial<CmdSubmit> = {}): CmdSubmit {
  const m: CmdSubmit = {
    kind: "CMD_SUBMIT", seqnum: 1, devid: 0x10002, direction: 1, ep: 1, transferFlags: 0, transferBufferLength: 64,
    startFrame: 0, numberOfPackets: 0, interval: 0, setup: Buffer.alloc(8), payload: [], ...over,
  };
  return m;
}
function ret(over: Partial<RetSubmit> = {}): RetSubmit {
  return { kind: "RET_SUBMIT", seqnum: 1, devid: 0, direction: 0, ep: 0, status: 0, actualLength: 0, startFrame: 0, numberOfPackets: 0, errorCount: 0, payload: [], ...over };
}
/** A header with word i (0..11) replaced, to build what the encoder refuses to produce. */
function patch(b: Buffer, word: number, value: number): Buffer {
  const c = Buffer.from(b);
  c.writeUInt32BE(value >>> 0, word * 4);
  return c;
}

function client(bytes: Buffer[], opts: ClientDecoderOptions = {}) {
  const d = new ClientStreamDecoder(opts);
  const msgs = bytes.flatMap((b) => d.feed(b));
  return { msgs, err: d.end(), d };
}
function server(ctx: Buffer[], bytes: Buffer[], opts: ServerDecoderOptions = {}) {
  const table = new UrbTable();
  const c = new ClientStreamDecoder({ table });
  for (const b of ctx) c.feed(b);
  if (c.error) throw c.error;
  const d = new ServerStreamDecoder({ table, ...opts });
  const msgs = bytes.flatMap((b) => d.feed(b));
  return { msgs, err: d.end(), d };
}

const OK = encodeToBuffer(cmd({ seqnum: 100 })); // one valid message before each fault: 48 bytes

const clientCases: Array<[string, Buffer, string, number, ClientDecoderOptions?]> = [
  ["unknown command", patch(encodeToBuffer(cmd()), 0, 9), ErrorCode.UNKNOWN_COMMAND, 0],
  ["RET_SUBMIT in the client stream", patch(encodeToBuffer(cmd()), 0, 3), ErrorCode.WRONG_STREAM, 0],
  ["direction 2", patch(encodeToBuffer(cmd()), 3, 2), ErrorCode.BAD_DIRECTION, 12],
  ["ep 16 (CVE-2017-16912)", patch(encodeToBuffer(cmd()), 4, 16), ErrorCode.BAD_ENDPOINT, 16],
  ["negative transfer_buffer_length (CVE-2017-16913)", patch(encodeToBuffer(cmd()), 6, -1), ErrorCode.NEGATIVE_LENGTH, 24],
  ["transfer_buffer_length over the limit", patch(encodeToBuffer(cmd()), 6, 64 << 20), ErrorCode.LENGTH_LIMIT, 24],
  ["number_of_packets 1025", patch(encodeToBuffer(cmd()), 8, 1025), ErrorCode.PACKET_COUNT, 32],
  ["negative number_of_packets", patch(encodeToBuffer(cmd()), 8, -5), ErrorCode.PACKET_COUNT, 32],
  ["number_of_packets on the control endpoint", patch(encodeToBuffer(cmd({ ep: 0 })), 8, 3), ErrorCode.PACKET_COUNT, 32],
  ["number_of_packets on a known bulk endpoint", patch(encodeToBuffer(cmd()), 8, 3), ErrorCode.PACKET_COUNT, 32, { endpointType: () => "bulk" }],
  ["CMD_UNLINK with ep 99", patch(encodeToBuffer({ kind: "CMD_UNLINK", seqnum: 5, devid: 1, direction: 0, ep: 0, unlinkSeqnum: 1 }), 4, 99), ErrorCode.BAD_ENDPOINT, 16],
  ["OP version 0x0110", Buffer.from("0110800500000000", "hex"), ErrorCode.BAD_VERSION, 0, { phase: "op" }],
  ["unknown OP code 0x8006 (EXPORT)", Buffer.from("0111800600000000", "hex"), ErrorCode.UNKNOWN_OP, 2, { phase: "op" }],
  ["OP reply in the client stream", Buffer.from("0111000500000000", "hex"), ErrorCode.WRONG_STREAM, 2, { phase: "op" }],
  ["OP request with status 1", Buffer.from("0111800500000001", "hex"), ErrorCode.BAD_OP_STATUS, 4, { phase: "op" }],
  ["busid without NUL", Buffer.concat([Buffer.from("0111800300000000", "hex"), Buffer.alloc(32, 0x41)]), ErrorCode.BAD_STRING, 8, { phase: "op" }],
  ["bytes after OP_REQ_DEVLIST", Buffer.from("011180050000000000", "hex"), ErrorCode.TRAILING_DATA, 8, { phase: "op" }],
  ["truncated header", encodeToBuffer(cmd()).subarray(0, 47), ErrorCode.TRUNCATED, 0],
  ["truncated OUT payload", encodeToBuffer(cmd({ direction: 0, transferBufferLength: 4, payload: [Buffer.alloc(4)] })).subarray(0, 50), ErrorCode.TRUNCATED, 0],
];

for (const [name, bad, code, off, opts] of clientCases) {
  test(`client stream: ${name} → ${code} at byte ${off}`, (t) => {
    const prefix = opts?.phase === "op" ? [] : [OK];
    const base = prefix.length * 48;
    const r = client([...prefix, bad], opts);
    const before = prefix.length + (code === ErrorCode.TRAILING_DATA ? 1 : 0);
    t.is(r.msgs.length, before, "the messages before the fault are delivered");
    t.is(r.err?.code as string | undefined, code);
    t.is(r.err?.offset, base + off);
    t.true((r.err?.rule.length ?? 0) > 10);
  });
}

test("client stream: the length limit is enforced on the header alone, before any payload is buffered", (t) => {
  const d = new ClientStreamDecoder({ limits: { maxTransferBufferLength: 1024 } });
  const h = encodeToBuffer(cmd({ direction: 0, transferBufferLength: 4096, payload: [Buffer.alloc(4096)] })).subarray(0, 48);
  d.push(h);
  t.is(d.next(), null);
  t.is(d.error?.code, ErrorCode.LENGTH_LIMIT);
  t.is(d.buffered, 48);
});

test("client stream: ISO descriptors summing to non-zero actual_length → ISO_SUM at the first descriptor", (t) => {
  const iso: IsoPacket[] = [{ offset: 0, length: 32, actualLength: 0, status: 0 }, { offset: 32, length: 32, actualLength: 7, status: 0 }];
  const r = client([encodeToBuffer(cmd({ numberOfPackets: 2, isoPackets: iso }))]);
  t.is(r.err?.code, ErrorCode.ISO_SUM);
  t.is(r.err?.offset, 48);
});

test("client stream: ISO packet beyond the buffer → ISO_DESCRIPTOR", (t) => {
  const iso: IsoPacket[] = [{ offset: 0, length: 32, actualLength: 0, status: 0 }, { offset: 60, length: 32, actualLength: 0, status: 0 }];
  const r = client([encodeToBuffer(cmd({ numberOfPackets: 2, isoPackets: iso }))]);
  t.is(r.err?.code, ErrorCode.ISO_DESCRIPTOR);
  t.is(r.err?.offset, 64);
});

test("client stream: a seqnum already in flight → DUPLICATE_SEQNUM; the table cap → TOO_MANY_OUTSTANDING", (t) => {
  const a = client([encodeToBuffer(cmd({ seqnum: 7 })), encodeToBuffer(cmd({ seqnum: 7 }))]);
  t.is(a.err?.code, ErrorCode.DUPLICATE_SEQNUM);
  t.is(a.err?.offset, 48 + 4);
  const b = client([1, 2, 3].map((s) => encodeToBuffer(cmd({ seqnum: s }))), { limits: { maxOutstanding: 2 } });
  t.is(b.msgs.length, 2);
  t.is(b.err?.code, ErrorCode.TOO_MANY_OUTSTANDING);
  t.is(b.err?.offset, 96);
});

test("client stream: transfer buffers in flight beyond maxOutstandingBytes → TOO_MANY_OUTSTANDING at the length; answered URBs free theirs", (t) => {
  const MiB16 = 16 * 1024 * 1024;
  // the default cap (128 MiB): eight 16 MiB IN URBs fit, the ninth does not
  const a = client(Array.from({ length: 9 }, (_, i) => encodeToBuffer(cmd({ seqnum: i + 1, transferBufferLength: MiB16 }))));
  t.is(a.msgs.length, 8);
  t.is(a.err?.code, ErrorCode.TOO_MANY_OUTSTANDING);
  t.is(a.err?.offset, 8 * 48 + 24);
  t.is(a.d.table.outstandingBytes, 8 * MiB16);
  // with a RET for one of them in between, the ninth fits
  const table = new UrbTable();
  const c = new ClientStreamDecoder({ table });
  const sd = new ServerStreamDecoder({ table });
  t.is(c.feed(Buffer.concat(Array.from({ length: 8 }, (_, i) => encodeToBuffer(cmd({ seqnum: i + 1, transferBufferLength: MiB16 }))))).length, 8);
  t.is(sd.feed(encodeToBuffer(ret({ seqnum: 3, actualLength: 0 }))).length, 1);
  t.is(c.feed(encodeToBuffer(cmd({ seqnum: 9, transferBufferLength: MiB16 }))).length, 1);
  t.is(c.error, null);
  t.is(table.outstandingBytes, 8 * MiB16);
  // an unlink that catches its victim frees the victim's bytes too
  c.feed(encodeToBuffer({ kind: "CMD_UNLINK", seqnum: 20, devid: 0x10002, direction: 0, ep: 0, unlinkSeqnum: 4 }));
  sd.feed(encodeToBuffer({ kind: "RET_UNLINK", seqnum: 20, devid: 0, direction: 0, ep: 0, status: -104 }));
  t.is(table.outstandingBytes, 7 * MiB16);
  // a smaller cap through the limits
  const b = client([1, 2].map((s) => encodeToBuffer(cmd({ seqnum: s, transferBufferLength: 600 }))), { limits: { maxOutstandingBytes: 1000 } });
  t.is(b.msgs.length, 1);
  t.is(b.err?.offset, 48 + 24);
});

const IN64 = encodeToBuffer(cmd({ seqnum: 1, transferBufferLength: 64 }));
const OUT4 = encodeToBuffer(cmd({ seqnum: 2, direction: 0, transferBufferLength: 4, payload: [Buffer.alloc(4)] }));
const ISO2 = encodeToBuffer(cmd({ seqnum: 3, numberOfPackets: 2, isoPackets: [{ offset: 0, length: 32, actualLength: 0, status: 0 }, { offset: 32, length: 32, actualLength: 0, status: 0 }] }));

test("server stream: RET_SUBMIT for an unknown seqnum → UNKNOWN_SEQNUM", (t) => {
  const r = server([IN64], [encodeToBuffer(ret({ seqnum: 99 }))]);
  t.is(r.err?.code, ErrorCode.UNKNOWN_SEQNUM);
  t.is(r.err?.offset, 4);
  t.is(r.err?.seqnum, 99);
});

test("server stream: a second RET_SUBMIT for the same seqnum → UNKNOWN_SEQNUM (answered once)", (t) => {
  const r = server([IN64], [encodeToBuffer(ret({ seqnum: 1 })), encodeToBuffer(ret({ seqnum: 1 }))]);
  t.is(r.msgs.length, 1);
  t.is(r.err?.code, ErrorCode.UNKNOWN_SEQNUM);
  t.is(r.err?.offset, 48 + 4);
});

test("server stream: actual_length beyond the submitted buffer → ACTUAL_LENGTH (CVE-2016-3955), before the payload is buffered", (t) => {
  const bad = patch(encodeToBuffer(ret({ seqnum: 1 })), 6, 65);
  const r = server([IN64], [bad]);
  t.is(r.err?.code, ErrorCode.ACTUAL_LENGTH);
  t.is(r.err?.offset, 24);
  t.is(r.d.buffered, 48);
});

test("server stream: non-ISO RET_SUBMIT with number_of_packets 64 → PACKET_COUNT (CVE-2026-31607)", (t) => {
  const r = server([IN64], [patch(encodeToBuffer(ret({ seqnum: 1 })), 8, 64)]);
  t.is(r.err?.code, ErrorCode.PACKET_COUNT);
  t.is(r.err?.offset, 32);
});

test("server stream: ISO RET_SUBMIT with a packet count other than submitted → PACKET_COUNT", (t) => {
  const r = server([ISO2], [patch(encodeToBuffer(ret({ seqnum: 3, numberOfPackets: 2, isoPackets: [{ offset: 0, length: 32, actualLength: 0, status: 0 }, { offset: 32, length: 32, actualLength: 0, status: 0 }] })), 8, 900)]);
  t.is(r.err?.code, ErrorCode.PACKET_COUNT);
  t.is(r.err?.offset, 32);
});

test("server stream: ISO RET_SUBMIT whose packet actual_lengths do not sum to actual_length → ISO_SUM", (t) => {
  const iso = [{ offset: 0, length: 32, actualLength: 4, status: 0 }, { offset: 32, length: 32, actualLength: 4, status: 0 }];
  const r = server([ISO2], [encodeToBuffer(ret({ seqnum: 3, actualLength: 6, numberOfPackets: 2, payload: [Buffer.alloc(6)], isoPackets: iso }))]);
  t.is(r.err?.code, ErrorCode.ISO_SUM);
  t.is(r.err?.offset, 48 + 6);
});

test("server stream: ISO packet actual_length above its length → ISO_DESCRIPTOR", (t) => {
  const iso = [{ offset: 0, length: 32, actualLength: 40, status: 0 }, { offset: 32, length: 32, actualLength: 0, status: 0 }];
  const r = server([ISO2], [encodeToBuffer(ret({ seqnum: 3, actualLength: 40, numberOfPackets: 2, payload: [Buffer.alloc(40)], isoPackets: iso }))]);
  t.is(r.err?.code, ErrorCode.ISO_DESCRIPTOR);
  t.is(r.err?.offset, 48 + 40 + 8);
});

test("server stream: payload after an OUT RET_SUBMIT → OUT_PAYLOAD_IN_RET at the payload", (t) => {
  const r = server([OUT4], [encodeToBuffer(ret({ seqnum: 2, actualLength: 4 })), Buffer.from("deadbeef".repeat(12), "hex")]);
  t.is(r.msgs.length, 1);
  t.is(r.err?.code, ErrorCode.OUT_PAYLOAD_IN_RET);
  t.is(r.err?.offset, 48);
});

test("server stream: RET_UNLINK answering no pending CMD_UNLINK → UNKNOWN_UNLINK", (t) => {
  const r = server([IN64], [encodeToBuffer({ kind: "RET_UNLINK", seqnum: 1, devid: 0, direction: 0, ep: 0, status: -104 })]);
  t.is(r.err?.code, ErrorCode.UNKNOWN_UNLINK);
  t.is(r.err?.offset, 4);
});

test("server stream: a cancelled URB gets no RET_SUBMIT after its RET_UNLINK", (t) => {
  const unlink = encodeToBuffer({ kind: "CMD_UNLINK", seqnum: 9, devid: 0x10002, direction: 0, ep: 0, unlinkSeqnum: 1 });
  const r = server([IN64, unlink], [encodeToBuffer({ kind: "RET_UNLINK", seqnum: 9, devid: 0, direction: 0, ep: 0, status: -104 }), encodeToBuffer(ret({ seqnum: 1 }))]);
  t.is(r.msgs.length, 1);
  t.is(r.err?.code, ErrorCode.UNKNOWN_SEQNUM);
  t.is(r.err?.offset, 48 + 4);
});

test("server stream: CMD in the server stream → WRONG_STREAM; OP phase errors", (t) => {
  t.is(server([], [IN64]).err?.code, ErrorCode.WRONG_STREAM);
  t.is(server([], [Buffer.from("0111800300000000", "hex")], { phase: "op" }).err?.code, ErrorCode.WRONG_STREAM);
  const many = Buffer.from("0111000500000000" + "00100000", "hex");
  const r = server([], [many], { phase: "op" });
  t.is(r.err?.code, ErrorCode.TOO_MANY_DEVICES);
  t.is(r.err?.offset, 8);
  t.is(server([], [Buffer.from("0111000300000001ff", "hex")], { phase: "op" }).err?.code, ErrorCode.TRAILING_DATA, "no bytes after a failed import");
});

const handshakeCases: Array<[string, string, number]> = [
  ["devid with a sign", "+5 480\n", 0],
  ["devid 2^32", "4294967296 480\n", 0],
  ["devid with 11 digits", "00000000001 480\n", 0],
  ["hex devid", "0x10002 480\n", 0],
  ["unknown speed", "65538 481\n", 6],
  ["speed with a unit", "65538 480M\n", 6],
  ["no speed", "65538\n", 5],
  ["empty line", "\n", 0],
  ["carriage return", "65538 480\r\n", 9],
  ["NUL byte", "65538\u0000480\n", 5],
  ["non-ASCII byte", "65538 480 \u00e9\n", 10],
];
for (const [name, line, off] of handshakeCases) {
  test(`handshake: ${name} → BAD_HANDSHAKE at byte ${off}`, (t) => {
    const r = scanHandshake(Buffer.from(line, "latin1"));
    t.is(r.type, "error");
    if (r.type === "error") {
      t.is(r.error.code, ErrorCode.BAD_HANDSHAKE);
      t.is(r.error.offset, off);
    }
  });
}

test("handshake: accepted forms, the reserved field, and never reading past the newline", (t) => {
  const bytes = Buffer.concat([Buffer.from("  4294967295\t20000  future stuff  \n"), Buffer.from([0, 0, 0, 3])]);
  const r = scanHandshake(bytes);
  t.is(r.type, "ok");
  if (r.type !== "ok") return;
  t.is(r.length, bytes.length - 4);
  t.deepEqual(r.handshake, { kind: "HANDSHAKE", devid: 4294967295, speed: "20000", reserved: "future stuff" });
  t.is(scanHandshake(Buffer.from("65538 48")).type, "need-more");
  t.is(scanHandshake(Buffer.alloc(300, 0x31)).type, "error", "a line longer than 256 bytes is refused before it is buffered");
  for (const s of ["1.5", "12", "480", "53.3-480", "5000", "10000", "20000"]) t.is(scanHandshake(Buffer.from(`0 ${s}\n`)).type, "ok");
});

test("server stream in handshake phase: the line, then RET_* in the same chunk", (t) => {
  const r = server([IN64], [Buffer.concat([Buffer.from("65538 480\n"), encodeToBuffer(ret({ seqnum: 1, actualLength: 2, payload: [Buffer.from("hi")] }))])], { phase: "handshake" });
  t.is(r.err, null);
  t.deepEqual(r.msgs.map((m) => m.kind), ["HANDSHAKE", "RET_SUBMIT"]);
  t.is(r.d.messageOffset, 10);
});

test("client stream: an outstanding control URB's setup in the table is a copy, not a view that would keep the read buffer alive", (t) => {
  const table = new UrbTable();
  const dec = new ClientStreamDecoder({ table });
  const setup = Buffer.from([0x80, 6, 0, 1, 0, 0, 18, 0]);
  // a read buffer of its own (not Node's shared pool, which a small copy may come from too)
  const wire = encodeToBuffer({ kind: "CMD_SUBMIT", seqnum: 7, devid: 0x10002, direction: 1, ep: 0, transferFlags: 0, transferBufferLength: 18, startFrame: 0, numberOfPackets: 0, interval: 0, setup, payload: [] });
  const chunk = Buffer.allocUnsafeSlow(64 * 1024).subarray(100, 100 + wire.length);
  wire.copy(chunk);
  dec.push(chunk);
  t.is(dec.next()?.kind, "CMD_SUBMIT");
  const kept = table.getSubmit(7)?.setup;
  t.deepEqual(kept, setup);
  t.not(kept!.buffer, chunk.buffer);
});
