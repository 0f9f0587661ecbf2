/**
 * The validating relay's protection in numbers (npm run bench:fuzz): one boot runs the optional
 * guest scenario "bench: fuzz protection" (test/vm/guest/bench-fuzz.ts): per target (vhci-hcd,
 * usbip-host) and device (BENCH_FUZZ_DEVICES, default disk,sourcesink) the same fuzzing campaign (seeds from BENCH_FUZZ_SEED, BENCH_FUZZ_SECONDS each,
 * default 60; rate BENCH_FUZZ_RATE, default 0.1) with the mutations sent to the kernel unvalidated
 * and through the relay (validated first: an unvalidated campaign may oops the kernel). Prints JSON: messages mutated, kernel errors and findings of each,
 * and whether the goal holds (no kernel error behind the relay). Exit 1 if the VM run failed or a
 * campaign mutated nothing. Without qemu the VM is skipped loudly. VM_KERNEL picks the kernel.
 */
import { reportVmBench, runVmBench } from "./vm-scenario.js";

const run = runVmBench("vm-fuzz-protection", "bench: fuzz protection");
const checks = [...run.checks];
let result: Record<string, unknown> = {};
if (run.json !== undefined) {
  type Counts = { runs: number; mutated: number; kernelErrors: number; findings: number; afterOops?: true };
  const r = run.json as { seconds: number; seed: number; rate: string; devices: string[]; targets: Record<string, Record<string, Record<"unvalidated" | "validated", Counts>>> };
  const all = Object.entries(r.targets).flatMap(([t, ds]) => Object.entries(ds).flatMap(([d, v]) => Object.entries(v).map(([k, c]) => ({ what: `${t}/${d} ${k}`, validated: k === "validated", c }))));
  for (const { what, c } of all) if (!(c.mutated > 0) && !c.afterOops) checks.push(`${what}: nothing mutated in ${c.runs} runs`);
  // the validated campaigns run first, before any unvalidated one could oops the kernel
  for (const { what, validated, c } of all) if (validated && c.afterOops) checks.push(`${what}: ran after an oops`);
  const behindRelay = all.filter((x) => x.validated).reduce((n, x) => n + x.c.kernelErrors, 0);
  const unvalidated = all.filter((x) => !x.validated).reduce((n, x) => n + x.c.kernelErrors, 0);
  result = { ...r, goal: "0 kernel errors behind the relay", kernelErrorsUnvalidated: unvalidated, kernelErrorsBehindRelay: behindRelay, met: behindRelay === 0 };
}
reportVmBench("vm-fuzz-protection", run, result, checks);
