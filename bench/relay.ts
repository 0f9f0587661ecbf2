/**
 * Relay benchmark, host side (npm run bench): JSON on stdout, exit 1 if a check fails.
 *  1. throughput: a 64 KiB bulk IN RET_SUBMIT stream through a relay stage between pipes vs. a
 *     plain `cat` stage, alternating in one run (target ratio >= 0.8); each output is checked
 *     byte-identical to the input (the relay re-encodes, so a broken fast path cannot hide).
 *  2. added latency per small URB: CMD then RET (8-byte interrupt IN) through the in-process relay
 *     vs. the same ping-pong over bare streams; p50/p99 of the difference, in microseconds.
 *     More stages in the same rounds, for scale: the event-loop floor (stdin piped to stdout
 *     through libuv, no decoding), a blocking copy (readSync/writeSync, 1 MiB, no event loop), and
 *     the relay's hot direction on blocking I/O (same decoders and checks; not usable as the
 *     product's data path, see blocking-relay-stage.ts), all checked byte-identical too.
 * The VM half (O_DIRECT disk reads direct vs. relays) is bench/vm.ts.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import { encode } from "../protocol/encoder.js";
import type { CmdSubmit, RetSubmit } from "../protocol/messages.js";
import { UrbRelay } from "../relay/urb-relay.js";

const quick = process.argv.includes("--quick");
const here = path.dirname(fileURLToPath(import.meta.url));
const tmp = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-bench-"));
const checks: string[] = [];

const cmd = (seqnum: number, len: number): CmdSubmit => ({ kind: "CMD_SUBMIT", seqnum, devid: 0x10002, direction: 1, ep: 1, transferFlags: 0x200, transferBufferLength: len, startFrame: 0, numberOfPackets: 0, interval: 0, setup: Buffer.alloc(8), payload: [] });
const ret = (seqnum: number, payload: Buffer): RetSubmit => ({ kind: "RET_SUBMIT", seqnum, devid: 0, direction: 0, ep: 0, status: 0, actualLength: payload.length, startFrame: 0, numberOfPackets: 0, errorCount: 0, payload: [payload] });

// ---- 1. throughput between pipes ------------------------------------------------------
const N = quick ? 64 : 512; // 64 KiB each: 32 MiB per run
const payload = Buffer.alloc(64 * 1024);
for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
const cmdFile = path.join(tmp, "cmds.bin");
writeFileSync(cmdFile, Buffer.concat(Array.from({ length: N }, (_, i) => encode(cmd(i + 1, payload.length))).flat()));
const stream = Buffer.concat(Array.from({ length: N }, (_, i) => encode(ret(i + 1, payload))).flat());
const want = createHash("sha256").update(stream).digest("hex");

function stage(cmdLine: string[]): Promise<{ mbps: number; ok: boolean }> {
  return new Promise((resolve) => {
    const [c, ...a] = cmdLine as [string, ...string[]];
    const child = spawn(c, a, { stdio: ["pipe", "pipe", "inherit"] });
    const h = createHash("sha256");
    let n = 0;
    // timed from the first byte out to the last (process start-up is not the relay's cost)
    let t0 = 0n;
    child.stdout.on("data", (b: Buffer) => {
      if (t0 === 0n) t0 = process.hrtime.bigint();
      h.update(b);
      n += b.length;
    });
    child.stdout.on("end", () => {
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      resolve({ mbps: n / 1e6 / Math.max(s, 1e-6), ok: n === stream.length && h.digest("hex") === want });
    });
    for (let p = 0; p < stream.length; p += 1 << 16) child.stdin.write(stream.subarray(p, p + (1 << 16)));
    child.stdin.end();
  });
}

const rounds = quick ? 2 : 5;
const relayRuns: number[] = [];
const catRuns: number[] = [];
const nodeRuns: number[] = [];
const blockingRuns: number[] = [];
const blockingRelayRuns: number[] = [];
for (let r = 0; r < rounds; r++) {
  const c = await stage(["cat"]);
  const p = await stage([process.execPath, path.join(here, "pipe-stage.js")]);
  if (!p.ok) checks.push("node pipe output differs");
  nodeRuns.push(p.mbps);
  const b = await stage([process.execPath, path.join(here, "blocking-copy-stage.js")]);
  if (!b.ok) checks.push("node blocking copy output differs");
  blockingRuns.push(b.mbps);
  const br = await stage([process.execPath, path.join(here, "blocking-relay-stage.js"), cmdFile]);
  if (!br.ok) checks.push("blocking relay output differs from its input");
  blockingRelayRuns.push(br.mbps);
  const x = await stage([process.execPath, path.join(here, "relay-stage.js"), cmdFile]);
  if (!c.ok) checks.push("cat output differs");
  if (!x.ok) checks.push("relay output differs from its input");
  catRuns.push(c.mbps);
  relayRuns.push(x.mbps);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// ---- 2. added latency per small URB ---------------------------------------------------
async function pingPong(withRelay: boolean, count: number): Promise<number[]> {
  const clientIn = new PassThrough();
  const clientOut = new PassThrough();
  const serverIn = new PassThrough();
  const serverOut = new PassThrough();
  if (withRelay) new UrbRelay({ clientIn, clientOut, serverIn, serverOut }).start();
  else {
    clientIn.pipe(serverOut);
    serverIn.pipe(clientOut);
  }
  serverOut.resume();
  const small = Buffer.alloc(8, 1);
  const out: number[] = [];
  for (let i = 1; i <= count; i++) {
    for (const b of encode(cmd(i, 8))) clientIn.write(b);
    await new Promise((r) => setImmediate(r));
    const t0 = process.hrtime.bigint();
    const got = new Promise<void>((r) => clientOut.once("data", () => r()));
    serverIn.write(Buffer.concat(encode(ret(i, small))));
    await got;
    out.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return out;
}
const COUNT = quick ? 300 : 3000;
await pingPong(true, 200); // warm-up
const bare = await pingPong(false, COUNT);
const relayed = await pingPong(true, COUNT);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;
const latency = {
  bareP50us: Math.round(pct(bare, 50) * 10) / 10,
  bareP99us: Math.round(pct(bare, 99) * 10) / 10,
  relayP50us: Math.round(pct(relayed, 50) * 10) / 10,
  relayP99us: Math.round(pct(relayed, 99) * 10) / 10,
  addedP50us: Math.round((pct(relayed, 50) - pct(bare, 50)) * 10) / 10,
  addedP99us: Math.round((pct(relayed, 99) - pct(bare, 99)) * 10) / 10,
};
if (relayed.length !== COUNT) checks.push("latency: URBs lost");

const ratio = median(relayRuns) / median(catRuns);
const result = {
  bench: "relay",
  node: process.version,
  throughput: { bytesPerRun: stream.length, rounds, relayMBps: Math.round(median(relayRuns)), catMBps: Math.round(median(catRuns)), nodePipeMBps: Math.round(median(nodeRuns)), nodePipeRatio: Math.round((median(nodeRuns) / median(catRuns)) * 1000) / 1000, nodeBlockingCopyMBps: Math.round(median(blockingRuns)), nodeBlockingCopyRatio: Math.round((median(blockingRuns) / median(catRuns)) * 1000) / 1000, blockingRelayMBps: Math.round(median(blockingRelayRuns)), blockingRelayRatio: Math.round((median(blockingRelayRuns) / median(catRuns)) * 1000) / 1000, relayVsFloor: Math.round((median(relayRuns) / median(nodeRuns)) * 1000) / 1000, ratio: Math.round(ratio * 1000) / 1000, target: 0.8, met: ratio >= 0.8 },
  latency,
  checks: checks.length === 0 ? "ok" : checks,
};
process.stdout.write(JSON.stringify(result, null, 2) + "\n");
process.exitCode = checks.length === 0 ? 0 : 1;
