/**
 * Attach-time bench (npm run bench:attach, part of npm run bench): boots the real-kernel VM once
 * and runs the optional guest scenario "bench: attach time" (test/vm/guest/bench-attach.ts):
 * from starting an export to the gadget disk being visible on the frontend, our kernel and
 * relay modes (the frontend relay — also on the event loop — and the backend relay) over
 * `qrexec-sim --link direct` against a bare script that makes only the sysfs
 * writes (bind, usbip_sockfd, attach), alternating over BENCH_ROUNDS rounds (default 5), each
 * attach read back and cleaned up. Prints JSON: median milliseconds, the ratio of each mode to
 * the bare script (goal <= 1.2), and the same with the simulator's own start taken off (a real
 * qrexec link has its own). Exit 1 if the scenario failed or a number is missing or implausible.
 * Without qemu the VM is skipped loudly. VM_KERNEL picks the kernel, as for the VM suite.
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { reportVmBench, runVmBench } from "./vm-scenario.js";

const here = path.dirname(fileURLToPath(import.meta.url));
// the .deb whose CLI (one bundle) the guest also measures: what a user runs
const pkg = spawnSync(process.execPath, [path.join(here, "../../scripts/package.mjs")], { encoding: "utf8" });
if (pkg.status !== 0) {
  process.stderr.write(`bench/attach: npm run package failed: ${pkg.stderr.trim().split("\n").slice(-3).join(" | ")}\n`);
  process.exit(1);
}
const run = runVmBench("vm-attach", "bench: attach time");
const checks = [...run.checks];
let result: Record<string, unknown> = {};
if (run.json !== undefined) {
  const r = run.json as { rounds: number; msMedian: Record<string, number>; runs: Record<string, number[]>; timeline: string[] };
  const m = r.msMedian;
  for (const k of ["bare", "kernel", "relay", "relayEventLoop", "backendRelay", "simOnly", "kernelPackaged", "nodeBare", "cliVersion", "cliVersionPackaged"]) {
    if (!(m[k]! > 0 && m[k]! < 60_000)) checks.push(`${k}: implausible median ${m[k]} ms`);
    if (r.runs[k]?.length !== r.rounds) checks.push(`${k}: ${r.runs[k]?.length ?? 0} runs of ${r.rounds}`);
  }
  const ratio = (x: number) => Math.round((x / m.bare!) * 100) / 100;
  result = {
    rounds: r.rounds,
    msMedian: m,
    vsBare: { kernel: ratio(m.kernel!), relay: ratio(m.relay!), backendRelay: ratio(m.backendRelay!), kernelPackaged: ratio(m.kernelPackaged!) },
    vsBareWithoutSimulator: { kernel: ratio(m.kernel! - m.simOnly!), relay: ratio(m.relay! - m.simOnly!), relayEventLoop: ratio(m.relayEventLoop! - m.simOnly!), backendRelay: ratio(m.backendRelay! - m.simOnly!), kernelPackaged: ratio(m.kernelPackaged! - m.simOnly!) },
    // the floor of any Node tool: the bare writes plus one start of our CLI (the import's start overlaps the export's)
    vsBarePlusCliStart: { kernel: Math.round((m.kernel! - m.simOnly!) / (m.bare! + m.cliVersion!) * 100) / 100, relay: Math.round((m.relay! - m.simOnly!) / (m.bare! + m.cliVersion!) * 100) / 100 },
    goal: 1.2,
    timeline: r.timeline,
    runs: r.runs,
  };
}
reportVmBench("vm-attach", run, result, checks);
