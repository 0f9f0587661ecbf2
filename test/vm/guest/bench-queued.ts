/**
 * The VM half of the queued benchmark (optional: run by name from bench/vm.ts): a workload where
 * pipelining decides, beside bench-throughput's disk (one URB in flight). usbtest's queued bulk
 * cases against a dummy_hcd SourceSink gadget: case 28 reads and case 27 writes
 * ITERATIONS × SGLEN URBs of LENGTH bytes with SGLEN of them in flight at once (usbtest's
 * test_queue resubmits each URB from its completion), through every data path of bench-modes.ts
 * in one boot. usbtest times each case itself; throughput is the bytes over that time. The
 * URBs in flight the relays and the userspace backend saw are reported (their statistics).
 * Each case runs twice per attach: the first run (readMBps, writeMBps) meets the data path's
 * processes new, a Node relay's JIT cold; the second (warmReadMBps, warmWriteMBps) the same
 * code warm. Measured on 6.1: a relay's first 2048 URBs take about twice as long as the next.
 * Knobs: BENCH_QUEUED_ITERATIONS (64), BENCH_QUEUED_LENGTH (16384), BENCH_QUEUED_SGLEN (32),
 * BENCH_ROUNDS (2). Result: one `# bench-json {...}` line.
 */
import { appendFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import path from "node:path";
import type { Scenario } from "./scenarios.js";
import { checkGadgetsGone, interfaceDriver, sourceSink } from "./gadget.js";
import { check, usbfsNode, waitFor } from "./lib.js";
import { repo } from "./flows.js";
import { forEachMode, median, MODES } from "./bench-modes.js";

const ITERATIONS = Number(process.env.BENCH_QUEUED_ITERATIONS ?? 64);
const LENGTH = Number(process.env.BENCH_QUEUED_LENGTH ?? 16384);
const SGLEN = Number(process.env.BENCH_QUEUED_SGLEN ?? 32);
const BYTES = ITERATIONS * SGLEN * LENGTH;

/** usbtest `test` (27 write, 28 read) on the imported device `local`; MB/s by usbtest's own clock. */
async function queued(local: string, test: 27 | 28): Promise<number> {
  await waitFor(`usbtest bound to ${local}`, () => interfaceDriver(local) === "usbtest", 30_000);
  const node = usbfsNode(local);
  const out = execFileSync("/usr/bin/python3", [path.join(repo, "test/vm/guest/usbtest.py"), node, String(test), String(ITERATIONS), String(LENGTH), String(SGLEN)], { encoding: "utf8", timeout: 300_000, stdio: ["ignore", "pipe", "ignore"] });
  const r = JSON.parse(out.trim().split("\n").pop()!) as { ok: boolean; errno: string | null; kernelSeconds?: number };
  check(r.ok && r.kernelSeconds !== undefined && r.kernelSeconds > 0, `usbtest case ${test} failed: ${r.errno}`);
  return BYTES / 1e6 / r.kernelSeconds!;
}

export const benchQueued: Scenario = {
  name: "bench: queued bulk (usbtest 27/28, many URBs in flight) through every data path",
  optional: true,
  async run() {
    const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
    const g = await sourceSink("benchss", "dummy_udc.0");
    const read: Record<string, number[]> = Object.fromEntries(MODES.map((m) => [m.name, []]));
    const write: Record<string, number[]> = Object.fromEntries(MODES.map((m) => [m.name, []]));
    const warmRead: Record<string, number[]> = Object.fromEntries(MODES.map((m) => [m.name, []]));
    const warmWrite: Record<string, number[]> = Object.fromEntries(MODES.map((m) => [m.name, []]));
    let loop;
    try {
      loop = await forEachMode({
        busid: g.busid,
        interfaceDriver: "usbtest",
        rounds,
        async attached(m, local) {
          // each case twice on one attach: the first run meets a fresh process (its JIT cold),
          // the second the same code warm — what a longer transfer sees after its first second
          read[m.name]!.push(await queued(local, 28));
          warmRead[m.name]!.push(await queued(local, 28));
          write[m.name]!.push(await queued(local, 27));
          warmWrite[m.name]!.push(await queued(local, 27));
        },
        straceRun: async (local) => void (await queued(local, 28)),
      });
    } finally {
      g.remove();
    }
    checkGadgetsGone();
    const mb = (x: Record<string, number[]>) => Object.fromEntries(Object.entries(x).map(([k, v]) => [k, Math.round(median(v) * 10) / 10]));
    const urbs = ITERATIONS * SGLEN;
    const perUrb = Object.fromEntries(Object.entries(loop.syscalls).map(([k, v]) => [k, Math.round((v.total / urbs) * 100) / 100]));
    const result = { iterations: ITERATIONS, length: LENGTH, sglen: SGLEN, urbsPerRun: urbs, rounds, readMBps: mb(read), writeMBps: mb(write), warmReadMBps: mb(warmRead), warmWriteMBps: mb(warmWrite), read, write, warmRead, warmWrite, maxInFlight: loop.maxInFlight, ...(process.env.BENCH_STRACE ? { syscallsPerUrb: perUrb, syscalls: loop.syscalls } : {}) };
    const tap = process.env.VM_RESULTS_TAP;
    if (tap) appendFileSync(tap, `# bench-json ${JSON.stringify(result)}\n`);
    else process.stdout.write(`# bench-json ${JSON.stringify(result)}\n`);
  },
};
