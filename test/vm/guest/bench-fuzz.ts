/**
 * The VM half of the relay's protection in numbers (optional: runs only when selected by name,
 * from bench/fuzz-protection.ts): for each target (vhci-hcd, usbip-host) the same campaign twice
 * with the same seeds and budget — mutations sent to the kernel unvalidated, then through the
 * validating relay — counting the kernel's complaints each time. The goal: none behind the
 * relay. Result: one `# bench-json {...}` line appended to the TAP file.
 */
import { appendFileSync } from "node:fs";
import type { Scenario } from "./scenarios.js";
import { campaign, type CampaignResult } from "./fuzz-campaign.js";

export const benchFuzz: Scenario = {
  name: "bench: fuzz protection, kernel errors from the same mutations without and with the validating relay",
  optional: true,
  async run() {
    const seconds = Number(process.env.BENCH_FUZZ_SECONDS ?? 60);
    const seed = Number(process.env.BENCH_FUZZ_SEED ?? 1);
    const rate = process.env.BENCH_FUZZ_RATE ?? "0.1";
    const out: Record<string, Record<string, Omit<CampaignResult, "found">>> = {};
    for (const target of ["vhci", "usbip-host"] as const) {
      out[target] = {};
      for (const validate of [false, true]) {
        const { found: _found, ...r } = await campaign({ target, seconds, seed, rate, fields: "", validate, shrinkTries: 0, results: `/run/tmp/bench-fuzz-${target}-${validate}` });
        out[target]![validate ? "validated" : "unvalidated"] = r;
      }
    }
    const line = `# bench-json ${JSON.stringify({ seconds, seed, rate, targets: out })}\n`;
    if (process.env.VM_RESULTS_TAP) appendFileSync(process.env.VM_RESULTS_TAP, line);
    else process.stdout.write(line);
    return Object.entries(out).map(([t, v]) => `${t}: ${v.unvalidated!.kernelErrors} kernel errors unvalidated / ${v.validated!.kernelErrors} validated`).join("; ");
  },
};
