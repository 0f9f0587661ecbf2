/**
 * The validating relay's protection in numbers (npm run bench:fuzz): one boot runs the optional
 * guest scenario "bench: fuzz protection" (test/vm/guest/bench-fuzz.ts): per target (vhci-hcd,
 * usbip-host) the same fuzzing campaign (seeds from BENCH_FUZZ_SEED, BENCH_FUZZ_SECONDS each,
 * default 60; rate BENCH_FUZZ_RATE, default 0.1) with the mutations sent to the kernel unvalidated
 * and then through the relay. Prints JSON: messages mutated, kernel errors and findings of each,
 * and whether the goal holds (no kernel error behind the relay). Exit 1 if the VM run failed or a
 * campaign mutated nothing. Without qemu the VM is skipped loudly. VM_KERNEL picks the kernel.
 */
import { reportVmBench, runVmBench } from "./vm-scenario.js";

const run = runVmBench("vm-fuzz-protection", "bench: fuzz protection");
const checks = [...run.checks];
let result: Record<string, unknown> = {};
if (run.json !== undefined) {
  const r = run.json as { seconds: number; seed: number; rate: string; targets: Record<string, Record<"unvalidated" | "validated", { runs: number; mutated: number; kernelErrors: number; findings: number }>> };
  for (const [t, v] of Object.entries(r.targets)) for (const [k, c] of Object.entries(v)) if (!(c.mutated > 0)) checks.push(`${t} ${k}: nothing mutated in ${c.runs} runs`);
  const behindRelay = Object.values(r.targets).reduce((n, v) => n + v.validated.kernelErrors, 0);
  result = { ...r, goal: "0 kernel errors behind the relay", kernelErrorsBehindRelay: behindRelay, met: behindRelay === 0 };
}
reportVmBench("vm-fuzz-protection", run, result, checks);
