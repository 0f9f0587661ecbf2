/**
 * The VM half of the relay's protection in numbers (optional: runs only when selected by name,
 * from bench/fuzz-protection.ts): for each target (vhci-hcd, usbip-host) and device
 * (BENCH_FUZZ_DEVICES, default disk and sourcesink) the same campaign twice with the same seeds
 * and budget — through the validating relay, and with the mutations sent to the kernel
 * unvalidated — counting the kernel's complaints each time. The goal: none behind the relay.
 * The validated campaigns all run first: an unvalidated one may oops the kernel, and what runs
 * after an oops counts for nothing (the campaigns left are not run, marked afterOops). Result: one
 * `# bench-json {...}` line appended to the TAP file.
 */
import { appendFileSync } from "node:fs";
import type { Scenario } from "./scenarios.js";
import { campaign, type CampaignResult } from "./fuzz-campaign.js";
import { DEVICES_OF, type FuzzDevice, type FuzzTarget } from "./fuzz-workloads.js";

type Counts = Omit<CampaignResult, "found" | "lastMutated"> & { afterOops?: true };

export const benchFuzz: Scenario = {
  name: "bench: fuzz protection, kernel errors from the same mutations without and with the validating relay",
  optional: true,
  kernelLogIsTheResult: true,
  async run() {
    const seconds = Number(process.env.BENCH_FUZZ_SECONDS ?? 60);
    const seed = Number(process.env.BENCH_FUZZ_SEED ?? 1);
    const rate = process.env.BENCH_FUZZ_RATE ?? "0.1";
    const devices = (process.env.BENCH_FUZZ_DEVICES ?? "disk,sourcesink").split(",") as FuzzDevice[];
    const out: Record<string, Record<string, Partial<Record<"validated" | "unvalidated", Counts>>>> = {};
    let hurt = false;
    for (const validate of [true, false]) {
      for (const target of ["vhci", "usbip-host"] as FuzzTarget[]) {
        for (const device of devices.filter((d) => DEVICES_OF[target].includes(d))) {
          if (hurt) {
            // an earlier campaign oopsed the kernel: nothing measured in this boot counts any more
            ((out[target] ??= {})[device] ??= {})[validate ? "validated" : "unvalidated"] = { runs: 0, mutated: 0, kernelErrors: 0, findings: 0, said: [], afterOops: true };
            continue;
          }
          const { found, lastMutated: _last, ...r } = await campaign({ target, device, seconds, seed, rate, fields: "", validate, shrinkTries: 0, results: `/run/tmp/bench-fuzz-${target}-${device}-${validate}` });
          hurt ||= found.some((f) => f.confirmed === "needs a new boot");
          ((out[target] ??= {})[device] ??= {})[validate ? "validated" : "unvalidated"] = r;
        }
      }
    }
    const line = `# bench-json ${JSON.stringify({ seconds, seed, rate, devices, targets: out })}\n`;
    if (process.env.VM_RESULTS_TAP) appendFileSync(process.env.VM_RESULTS_TAP, line);
    else process.stdout.write(line);
    return Object.entries(out).flatMap(([t, ds]) => Object.entries(ds).map(([d, v]) => `${t}/${d}: ${v.unvalidated?.kernelErrors} kernel errors unvalidated / ${v.validated?.kernelErrors} validated`)).join("; ");
  },
};
