/**
 * Codec benchmark (npm run bench:codec): JSON on stdout, exit 1 if a check fails.
 *  1. small URBs (8-byte interrupt IN, header-dominated): decoded messages/s vs. a bare loop
 *     that only reads the same 48-byte headers with readUInt32BE (target ratio >= 0.5);
 *     plus the binary-parser header layout on the same stream, to show why the hot path is
 *     hand-written.
 *  2. 64 KiB bulk IN stream in 64 KiB chunks: MB/s of the server-stream decoder vs. Buffer.copy
 *     of the same bytes (target >= 1.0: payloads are views, framing must not cost a copy).
 *  3. the encoder on both shapes against the same baselines (writeUInt32BE headers;
 *     Buffer.copy), plus smart-buffer for the header.
 */
import { ClientStreamDecoder } from "../protocol/client-decoder.js";
import { ServerStreamDecoder } from "../protocol/server-decoder.js";
import { UrbTable } from "../protocol/urb-table.js";
import { encode } from "../protocol/encoder.js";
import { parseUrbHeaderWithBinaryParser, writeUrbHeaderWithSmartBuffer } from "./reference-codec.js";
import type { CmdSubmit, RetSubmit } from "../protocol/messages.js";
import { compare } from "./harness.js";

const quick = process.argv.includes("--quick");
const ROUNDS = quick ? 3 : 7;
const MIN_MS = quick ? 60 : 150;

function cmd(seqnum: number, len: number): CmdSubmit {
  return { kind: "CMD_SUBMIT", seqnum, devid: 0x10002, direction: 1, ep: 1, transferFlags: 0x200, transferBufferLength: len, startFrame: -1, numberOfPackets: 0, interval: 8, setup: Buffer.alloc(8), payload: [] };
}
function ret(seqnum: number, payload: Buffer): RetSubmit {
  return { kind: "RET_SUBMIT", seqnum, devid: 0, direction: 0, ep: 0, status: 0, actualLength: payload.length, startFrame: -1, numberOfPackets: 0, errorCount: 0, payload: [payload] };
}
const bytesOf = (ms: (CmdSubmit | RetSubmit)[]) => Buffer.concat(ms.flatMap((m) => encode(m)));

const checks: string[] = [];
function check(cond: boolean, what: string): void {
  if (!cond) checks.push(what);
}

// ---- 1. small URBs -------------------------------------------------------------------
const N = 1024;
const small = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
const smallCmds = bytesOf(Array.from({ length: N }, (_, i) => cmd(i + 1, 8)));
const smallRets = bytesOf(Array.from({ length: N }, (_, i) => ret(i + 1, small)));

let smallSeen = 0;
let smallPayload = 0;
const smallOurs = {
  run() {
    const table = new UrbTable();
    const c = new ClientStreamDecoder({ table });
    const s = new ServerStreamDecoder({ table });
    c.push(smallCmds);
    let n = 0;
    while (c.next() !== null) n++;
    s.push(smallRets);
    for (let m = s.next(); m !== null; m = s.next()) {
      n++;
      if (m.kind === "RET_SUBMIT") smallPayload += m.payload[0]![7]!;
    }
    smallSeen = n;
    return n;
  },
};
let sink = 0;
const smallBaseline = {
  run() {
    let n = 0;
    for (let p = 0; p < smallCmds.length; p += 48, n++) for (let w = 0; w < 48; w += 4) sink += smallCmds.readUInt32BE(p + w);
    for (let p = 0; p < smallRets.length; n++) {
      for (let w = 0; w < 48; w += 4) sink += smallRets.readUInt32BE(p + w);
      p += 48 + smallRets.readUInt32BE(p + 24);
    }
    return n;
  },
};
const smallBinaryParser = {
  run() {
    let n = 0;
    for (let p = 0; p < smallCmds.length; p += 48, n++) sink += parseUrbHeaderWithBinaryParser(smallCmds.subarray(p, p + 48)).seqnum;
    for (let p = 0; p < smallRets.length; n++) {
      const h = parseUrbHeaderWithBinaryParser(smallRets.subarray(p, p + 48));
      sink += h.seqnum;
      p += 48 + h.transferBufferLength; // RET_SUBMIT's actual_length sits where CMD's length does
    }
    return n;
  },
};
const r1 = compare({ ours: smallOurs, baseline: smallBaseline, binaryParser: smallBinaryParser }, ROUNDS, MIN_MS);
smallPayload = 0;
smallOurs.run();
check(smallSeen === 2 * N, `small: decoded ${smallSeen} messages, expected ${2 * N}`);
check(smallPayload === 8 * N, `small: payload bytes not delivered (${smallPayload})`);
check(smallBaseline.run() === 2 * N && smallBinaryParser.run() === 2 * N, "small: baseline framing broken");

// ---- 2. 64 KiB bulk IN ----------------------------------------------------------------
const BULK = 64 * 1024;
const M = 64; // messages per round: 4 MiB
const big = Buffer.alloc(BULK);
for (let i = 0; i < BULK; i++) big[i] = (i * 31) & 0xff;
const bulkCmds = bytesOf(Array.from({ length: M }, (_, i) => cmd(i + 1, BULK)));
const bulkStream = bytesOf(Array.from({ length: M }, (_, i) => ret(i + 1, big)));
const bulkChunks: Buffer[] = [];
for (let p = 0; p < bulkStream.length; p += BULK) bulkChunks.push(bulkStream.subarray(p, p + BULK));
let bulkMsgs = 0;
let bulkBytes = 0;
let bulkSample = 0;
const bulkOurs = {
  run() {
    const table = new UrbTable();
    new ClientStreamDecoder({ table }).feed(bulkCmds);
    const s = new ServerStreamDecoder({ table });
    let msgs = 0;
    let bytes = 0;
    for (const ch of bulkChunks) {
      s.push(ch);
      for (let m = s.next(); m !== null; m = s.next()) {
        msgs++;
        if (m.kind === "RET_SUBMIT") for (const seg of m.payload) bytes += seg.length;
        if (m.kind === "RET_SUBMIT" && msgs === M) bulkSample = m.payload.at(-1)!.at(-1)!;
      }
    }
    bulkMsgs = msgs;
    bulkBytes = bytes;
    return bulkStream.length;
  },
};
const dest = Buffer.alloc(BULK);
const bulkBaseline = {
  run() {
    for (const ch of bulkChunks) ch.copy(dest, 0, 0, ch.length);
    return bulkStream.length;
  },
};
const r2 = compare({ ours: bulkOurs, baseline: bulkBaseline }, ROUNDS, MIN_MS);
bulkOurs.run();
check(bulkMsgs === M, `bulk: decoded ${bulkMsgs} messages, expected ${M}`);
check(bulkBytes === M * BULK, `bulk: ${bulkBytes} payload bytes, expected ${M * BULK}`);
check(bulkSample === big[BULK - 1], "bulk: last payload byte differs");

// ---- 3. encoder ----------------------------------------------------------------------
const smallMsgs = Array.from({ length: N }, (_, i) => ret(i + 1, small));
let encSmallBytes = 0;
const encSmallOurs = {
  run() {
    let bytes = 0;
    for (const m of smallMsgs) for (const b of encode(m)) bytes += b.length;
    encSmallBytes = bytes;
    return smallMsgs.length;
  },
};
const headerBuf = Buffer.alloc(48);
const encSmallBaseline = {
  run() {
    for (const m of smallMsgs) {
      headerBuf.writeUInt32BE(3, 0);
      headerBuf.writeUInt32BE(m.seqnum, 4);
      for (let w = 8; w < 48; w += 4) headerBuf.writeUInt32BE(0, w);
      headerBuf.writeUInt32BE(m.actualLength, 24);
    }
    return smallMsgs.length;
  },
};
const encSmartBuffer = {
  run() {
    for (const m of smallMsgs) {
      sink += writeUrbHeaderWithSmartBuffer({ command: 3, seqnum: m.seqnum, devid: 0, direction: 0, ep: 0, transferFlags: 0, transferBufferLength: m.actualLength, startFrame: -1, numberOfPackets: 0, interval: 0, setup: Buffer.alloc(8) }).length;
    }
    return smallMsgs.length;
  },
};
const r3 = compare({ ours: encSmallOurs, baseline: encSmallBaseline, smartBuffer: encSmartBuffer }, ROUNDS, MIN_MS);
encSmallOurs.run();
check(encSmallBytes === N * 56, `encode small: ${encSmallBytes} bytes, expected ${N * 56}`);
check(Buffer.concat(smallMsgs.flatMap((m) => encode(m))).equals(smallRets), "encode small: bytes differ from the decoded stream");

const bulkMsgsList = Array.from({ length: M }, (_, i) => ret(i + 1, big));
let encBulkBytes = 0;
let encBulkView = true;
const encBulkOurs = {
  run() {
    let bytes = 0;
    for (const m of bulkMsgsList) {
      const parts = encode(m);
      for (const b of parts) bytes += b.length;
      encBulkView &&= parts[1] === big; // payload passed through, not copied
    }
    encBulkBytes = bytes;
    return bytes;
  },
};
const bulkDest = Buffer.alloc(BULK + 48);
const encBulkBaseline = {
  run() {
    let bytes = 0;
    for (let i = 0; i < M; i++) bytes += big.copy(bulkDest, 48) + 48;
    return bytes;
  },
};
const r4 = compare({ ours: encBulkOurs, baseline: encBulkBaseline }, ROUNDS, MIN_MS);
encBulkOurs.run();
check(encBulkBytes === bulkStream.length, `encode bulk: ${encBulkBytes} bytes, expected ${bulkStream.length}`);
check(encBulkView, "encode bulk: payload was copied");
check(Buffer.concat(bulkMsgsList.flatMap((m) => encode(m))).equals(bulkStream), "encode bulk: bytes differ");

const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 1000;
const cases = [
  { name: "decode small URBs (8-byte interrupt IN)", unit: "messages/s", ours: r1.ours!.perSecond, baseline: r1.baseline!.perSecond, baselineName: "readUInt32BE header loop", target: 0.5, extra: { binaryParserHeader: r1.binaryParser!.perSecond, binaryParserRatio: ratio(r1.binaryParser!.perSecond, r1.baseline!.perSecond) } },
  { name: "decode 64 KiB bulk IN in 64 KiB chunks", unit: "MB/s", ours: r2.ours!.perSecond / 1e6, baseline: r2.baseline!.perSecond / 1e6, baselineName: "Buffer.copy of the same bytes", target: 1.0 },
  { name: "encode small URBs", unit: "messages/s", ours: r3.ours!.perSecond, baseline: r3.baseline!.perSecond, baselineName: "writeUInt32BE header loop", target: 0.5, extra: { smartBufferHeader: r3.smartBuffer!.perSecond, smartBufferRatio: ratio(r3.smartBuffer!.perSecond, r3.baseline!.perSecond) } },
  { name: "encode 64 KiB bulk IN", unit: "MB/s", ours: r4.ours!.perSecond / 1e6, baseline: r4.baseline!.perSecond / 1e6, baselineName: "Buffer.copy of the same bytes", target: 1.0 },
].map((c) => ({ ...c, ours: Math.round(c.ours), baseline: Math.round(c.baseline), ratio: ratio(c.ours, c.baseline), met: c.ours / c.baseline >= c.target }));

const result = { bench: "codec", node: process.version, rounds: ROUNDS, cases, checks: checks.length === 0 ? "ok" : checks, sink: sink > 0 };
process.stdout.write(JSON.stringify(result, null, 2) + "\n");
process.exitCode = checks.length === 0 ? 0 : 1;
