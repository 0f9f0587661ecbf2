/** `usbip-qrexec decode` end to end, as a user runs it. */
import test from "ava";
import { mkdtempSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { capture, repoRoot } from "./helpers/fixtures.js";
import { isOneLineError, runCli } from "./helpers/cli.js";

const fx = (n: string) => path.join(repoRoot, "test/fixtures/captures", n);
const tmp = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-decode-"));

const ALLOWED = new Set(["from", "kind", "seqnum", "devid", "direction", "ep", "status", "transferFlags", "transferBufferLength", "actualLength", "numberOfPackets", "unlinkSeqnum", "payloadBytes", "offset", "busid", "speed"]);

test("decode tcp-2 as ndjson: every message, client stream first, contract field names, offsets tiling the files", async (t) => {
  const r = await runCli(["decode", "--from-client", fx("tcp-2.client-to-server.bin"), "--from-server", fx("tcp-2.server-to-client.bin")]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, "");
  const recs = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  const firstServer = recs.findIndex((x) => x.from === "server");
  t.true(firstServer > 0);
  t.true(recs.slice(firstServer).every((x) => x.from === "server"), "client stream first");
  for (const x of recs) for (const k of Object.keys(x)) t.true(ALLOWED.has(k), `unexpected field ${k}`);
  t.deepEqual(recs[0], { from: "client", kind: "OP_REQ_IMPORT", busid: "1-1", offset: 0 });
  t.is(recs[firstServer]!.kind, "OP_REP_IMPORT");
  // offsets strictly increase and the last message ends inside the file
  const serverOffsets = recs.slice(firstServer).map((x) => x.offset as number);
  t.true(serverOffsets.every((o, i) => i === 0 || o > serverOffsets[i - 1]!));
  t.true(serverOffsets.at(-1)! < capture("tcp-2.server-to-client.bin").length);
  // RET_SUBMIT carries the direction of its CMD; payloadBytes only on IN
  const rets = recs.filter((x) => x.kind === "RET_SUBMIT");
  t.true(rets.length > 100);
  t.true(rets.every((x) => (x.direction === "in" ? x.payloadBytes === x.actualLength : x.payloadBytes === 0)));
  const cmds = recs.filter((x) => x.kind === "CMD_SUBMIT");
  t.true(cmds.every((x) => x.seqnum !== undefined && x.unlinkSeqnum === undefined && x.actualLength === undefined));
  // each RET answers a CMD with the same seqnum and endpoint
  const cmdBySeq = new Map(cmds.map((x) => [x.seqnum, x]));
  t.true(rets.every((x) => cmdBySeq.get(x.seqnum)?.ep === x.ep));
});

test("decode tcp-1 as text: one aligned line per message with a header", async (t) => {
  const r = await runCli(["decode", "--from-client", fx("tcp-1.client-to-server.bin"), "--from-server", fx("tcp-1.server-to-client.bin"), "--format", "text"]);
  t.is(r.code, 0);
  const lines = r.stdout.trimEnd().split("\n");
  t.is(lines.length, 3);
  t.regex(lines[0]!, /^kind\s+from\s+offset\s+seqnum/);
  t.regex(lines[1]!, /^OP_REQ_DEVLIST\s+client\s+0/);
  t.regex(lines[2]!, /^OP_REP_DEVLIST\s+server\s+0 .*ST_OK.*1 device.*1-1 1d6b:0104/);
});

test("decode of a malformed server stream: the messages before the fault, one error line with offset and rule, exit 2", async (t) => {
  const c = capture("tcp-2.client-to-server.bin");
  const s = Buffer.from(capture("tcp-2.server-to-client.bin"));
  // OP_REP_IMPORT is 320 bytes; the first RET_SUBMIT follows. Claim 4096 bytes for a 64-byte request.
  s.writeUInt32BE(4096, 320 + 24);
  const cf = path.join(tmp, "c.bin");
  const sf = path.join(tmp, "s.bin");
  writeFileSync(cf, c);
  writeFileSync(sf, s);
  const r = await runCli(["decode", "--from-client", cf, "--from-server", sf]);
  t.is(r.code, 2);
  const lines = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  const last = lines.at(-1)!;
  t.deepEqual(last, { from: "server", error: "USBIP_ERR_ACTUAL_LENGTH", offset: 344, rule: last.rule, seqnum: 1 });
  t.regex(String(last.rule), /actual_length 4096 exceeds the submitted transfer_buffer_length 64/);
  t.is(lines.at(-2)!.kind, "OP_REP_IMPORT", "messages before the fault are printed");
  t.true(isOneLineError(r.stderr));
  t.regex(r.stderr, /byte 344/);
});

test("decode of a truncated client stream and of a non-USB/IP file: exit 2, error names the offset", async (t) => {
  const cf = path.join(tmp, "trunc.bin");
  writeFileSync(cf, capture("tcp-2.client-to-server.bin").subarray(0, 100));
  const r = await runCli(["decode", "--from-client", cf, "--from-server", fx("tcp-2.server-to-client.bin"), "--format", "text"]);
  t.is(r.code, 2);
  t.regex(r.stdout, /ERROR\s+client\s+88 USBIP_ERR_TRUNCATED/);
  const junk = path.join(tmp, "junk.bin");
  writeFileSync(junk, Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3)));
  const j = await runCli(["decode", "--from-client", junk, "--from-server", junk]);
  t.is(j.code, 2);
  t.regex(j.stdout, /"error":"USBIP_ERR_UNKNOWN_COMMAND","offset":0/);
});

test("decode usage errors: one line, exit 64, no stack trace; unreadable file: exit 1", async (t) => {
  for (const args of [["decode"], ["decode", "--from-client", "x"], ["decode", "--bogus"], ["decode", "--from-client", "a", "--from-server", "b", "--format", "xml"], ["no-such-command"]]) {
    const r = await runCli(args);
    t.is(r.code, 64, args.join(" "));
    t.true(isOneLineError(r.stderr), r.stderr);
    t.is(r.stdout, "");
  }
  const r = await runCli(["decode", "--from-client", path.join(tmp, "missing"), "--from-server", path.join(tmp, "missing")]);
  t.is(r.code, 1);
  t.true(isOneLineError(r.stderr));
  t.regex(r.stderr, /cannot read .*missing: no such file/);
  const d = await runCli(["decode", "--from-client", tmp, "--from-server", tmp]);
  t.is(d.code, 1);
  t.regex(d.stderr, /is a directory/);
});

test("--help is there for the program and for decode", async (t) => {
  const a = await runCli(["--help"]);
  t.is(a.code, 0);
  t.regex(a.stdout, /decode/);
  const b = await runCli(["decode", "--help"]);
  t.is(b.code, 0);
  t.regex(b.stdout, /--from-client FILE/);
  t.regex(b.stdout, /--format/);
});

test("decode ndjson: OP_REP_DEVLIST carries its devices (busid, ids, devid, interface triples)", async (t) => {
  const r = await runCli(["decode", "--from-client", fx("tcp-1.client-to-server.bin"), "--from-server", fx("tcp-1.server-to-client.bin")]);
  t.is(r.code, 0, r.stderr);
  const rep = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>).find((x) => x.kind === "OP_REP_DEVLIST")!;
  const devices = rep.devices as Record<string, unknown>[];
  t.is(devices.length, 1);
  t.like(devices[0]!, { busid: "1-1", idVendor: 0x1d6b, idProduct: 0x0104, devid: (1 << 16) | 2, path: "/sys/devices/platform/dummy_hcd.0/usb1/1-1" });
  t.true(Array.isArray(devices[0]!.interfaces));
});

test("decode text: causal order — each RET right after the CMD it answers, the OP reply after its request", async (t) => {
  const r = await runCli(["decode", "--from-client", fx("tcp-2.client-to-server.bin"), "--from-server", fx("tcp-2.server-to-client.bin"), "--format", "text"]);
  t.is(r.code, 0, r.stderr);
  const rows = r.stdout.trimEnd().split("\n").slice(1).map((l) => l.split(/\s+/));
  t.deepEqual(rows.slice(0, 2).map((x) => x[0]), ["OP_REQ_IMPORT", "OP_REP_IMPORT"]);
  const seen = new Set<string>();
  let interleaved = false;
  for (const [i, x] of rows.entries()) {
    if (x[0] === "CMD_SUBMIT" || x[0] === "CMD_UNLINK") seen.add(x[3]!);
    if (x[0] === "RET_SUBMIT" || x[0] === "RET_UNLINK") {
      t.true(seen.has(x[3]!), `RET seqnum ${x[3]} at row ${i} before its CMD`);
      if (rows.slice(i + 1).some((y) => y[0] === "CMD_SUBMIT")) interleaved = true;
    }
  }
  t.true(interleaved, "all client messages came before the server's");
});

test("pcap: events stamped from the capture's time (the older input's mtime), 1 µs apart; - writes to stdout", async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-pcap-ts-"));
  const c = path.join(dir, "c.bin");
  const s = path.join(dir, "s.bin");
  writeFileSync(c, capture("tcp-2.client-to-server.bin"));
  writeFileSync(s, capture("tcp-2.server-to-client.bin"));
  const when = new Date("2025-03-04T05:06:07Z");
  utimesSync(c, when, when);
  utimesSync(s, when, new Date("2025-03-05T00:00:00Z"));
  const out = path.join(dir, "o.pcapng");
  const r = await runCli(["pcap", "--from-client", c, "--from-server", s, "-o", out]);
  t.is(r.code, 0, r.stderr);
  const stamps = enhancedPacketStamps(readFileSync(out));
  t.true(stamps.length > 10);
  t.is(stamps[0], BigInt(when.getTime()) * 1000n);
  t.true(stamps.every((x, i) => i === 0 || x === stamps[i - 1]! + 1n));
  const piped = await runCli(["pcap", "--from-client", c, "--from-server", s, "-o", "-"]);
  t.is(piped.code, 0, piped.stderr);
  t.is(Buffer.from(piped.stdout, "latin1").length > 0, true);
});

/** Timestamps (µs) of a pcapng's enhanced packet blocks (little-endian sections). */
function enhancedPacketStamps(b: Buffer): bigint[] {
  const out: bigint[] = [];
  for (let o = 0; o + 12 <= b.length; ) {
    const type = b.readUInt32LE(o);
    const len = b.readUInt32LE(o + 4);
    if (type === 6) out.push((BigInt(b.readUInt32LE(o + 12)) << 32n) | BigInt(b.readUInt32LE(o + 16)));
    o += len;
  }
  return out;
}
