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
 *     product's data path, see blocking-relay-stage.ts), all checked byte-identical too; and the
 *     relay as the product runs it, on its thread's poll() loop (relay-thread-stage.ts), beside
 *     the same relay on the event loop (relay-stage.ts). Beside the relay thread's added latency
 *     between real sockets, its floor: the same round trip through one C thread that polls,
 *     reads and writes (bench/c/hop-latency.c), i.e. what crossing to another thread costs here.
 * The VM half (O_DIRECT disk reads direct vs. relays) is bench/vm.ts.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, mkdtempSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import { encode } from "../protocol/encoder.js";
import type { CmdSubmit, RetSubmit } from "../protocol/messages.js";
import { UrbRelay } from "../relay/urb-relay.js";
import { RelayThread } from "../relay/relay-thread.js";
import { libc } from "../shared/libc.js";
import { buildC } from "./c-program.js";

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
const threadRuns: number[] = [];
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
  const th = await stage([process.execPath, path.join(here, "relay-thread-stage.js"), cmdFile]);
  if (!th.ok) checks.push("relay thread output differs from its input");
  threadRuns.push(th.mbps);
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
/**
 * The same over real sockets: the relay thread between two socketpairs, vs. the RET written
 * straight into one socketpair (the bare hop); the peers are this process's libuv sockets.
 */
async function pingPongFds(withThread: boolean, count: number): Promise<number[]> {
  const sock = (fd: number) => new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
  const [c1, c2] = libc().socketpair();
  const [s1, s2] = libc().socketpair();
  const client = sock(c2);
  const server = withThread ? sock(s2) : client; // bare: the RET goes straight to the client's peer
  const thread = withThread ? new RelayThread(new URL("../frontend/import-relay-thread.js", import.meta.url)) : undefined;
  let bare: net.Socket | undefined;
  if (thread) thread.start({ fds: { clientIn: c1, clientOut: c1, serverIn: s1, serverOut: s1 }, role: {} });
  else {
    bare = sock(c1);
    closeSync(s1);
    closeSync(s2);
  }
  const small = Buffer.alloc(8, 1);
  const out: number[] = [];
  for (let i = 1; i <= count; i++) {
    if (thread) {
      // the RET may go only once the relay forwarded its CMD (else it answers nothing)
      const forwarded = new Promise((r) => server.once("data", r));
      client.write(Buffer.concat(encode(cmd(i, 8))));
      await forwarded;
    }
    const t0 = process.hrtime.bigint();
    const got = new Promise<void>((r) => client.once("data", () => r()));
    (thread ? server : bare!).write(Buffer.concat(encode(ret(i, small))));
    await got;
    out.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  thread?.stop();
  await thread?.done;
  for (const x of [client, server, bare]) x?.destroy();
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
await pingPongFds(true, 200); // warm-up
const bareFds = await pingPongFds(false, COUNT);
const threaded = await pingPongFds(true, COUNT);
const us = (x: number) => Math.round(x * 10) / 10;
// the product's relay: its thread between sockets; the in-process figures above stay for the relay's own cost
const threadLatency = { bareSocketP50us: us(pct(bareFds, 50)), bareSocketP99us: us(pct(bareFds, 99)), relayThreadP50us: us(pct(threaded, 50)), relayThreadP99us: us(pct(threaded, 99)), addedP50us: us(pct(threaded, 50) - pct(bareFds, 50)), addedP99us: us(pct(threaded, 99) - pct(bareFds, 99)), targetAddedP99us: 20, met: pct(threaded, 99) - pct(bareFds, 99) <= 20 };
if (threaded.length !== COUNT || bareFds.length !== COUNT) checks.push("thread latency: URBs lost");
// the floor under it: the same round trip through one C thread that polls, reads and writes
// (bench/c/hop-latency.c, built here) — what crossing to another thread costs on this machine
const built = buildC("hop-latency");
let cThreadHop: Record<string, number> | string;
if (!("path" in built)) cThreadHop = `not built: ${built.why}`;
else {
  const r = spawnSync(built.path, [String(COUNT)], { encoding: "utf8", timeout: 60_000 });
  try {
    cThreadHop = JSON.parse(r.stdout) as Record<string, number>;
    if (!(typeof cThreadHop.addedP99us === "number" && cThreadHop.count === COUNT)) checks.push("hop-latency: implausible output");
  } catch {
    cThreadHop = `no result (exit ${r.status})`;
    checks.push("hop-latency: no JSON");
  }
}

// the product's relay is the thread's: the goal is on it; the event-loop relay stays beside it
const ratio = median(threadRuns) / median(catRuns);
const r3 = (x: number) => Math.round(x * 1000) / 1000;
const result = {
  bench: "relay",
  node: process.version,
  throughput: { bytesPerRun: stream.length, rounds, relayThreadMBps: Math.round(median(threadRuns)), relayThreadRatio: r3(ratio), eventLoopRelayMBps: Math.round(median(relayRuns)), eventLoopRelayRatio: r3(median(relayRuns) / median(catRuns)), catMBps: Math.round(median(catRuns)), nodePipeMBps: Math.round(median(nodeRuns)), nodePipeRatio: Math.round((median(nodeRuns) / median(catRuns)) * 1000) / 1000, nodeBlockingCopyMBps: Math.round(median(blockingRuns)), nodeBlockingCopyRatio: Math.round((median(blockingRuns) / median(catRuns)) * 1000) / 1000, blockingRelayMBps: Math.round(median(blockingRelayRuns)), blockingRelayRatio: Math.round((median(blockingRelayRuns) / median(catRuns)) * 1000) / 1000, eventLoopRelayVsFloor: r3(median(relayRuns) / median(nodeRuns)), ratio: r3(ratio), target: 0.8, met: ratio >= 0.8 },
  latency,
  threadLatency: { ...threadLatency, cThreadHop },
  checks: checks.length === 0 ? "ok" : checks,
};
process.stdout.write(JSON.stringify(result, null, 2) + "\n");
process.exitCode = checks.length === 0 ? 0 : 1;
