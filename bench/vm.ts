/**
 * Relay benchmark, VM half (part of npm run bench): boots the real-kernel VM once and runs the
 * optional guest scenario "bench: throughput" (test/vm/guest/bench-throughput.ts): a 64 MiB
 * gadget disk read with O_DIRECT 1 MiB reads through the direct kernel path and through the
 * relays, each attach checksummed. Prints JSON (ratios against the direct path measured in the
 * same boot; target >= 0.95); exit 1 if the scenario failed or its result is missing/implausible.
 * Without qemu the VM is skipped loudly (exit 0, "skipped" in the JSON), like the VM suite.
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
// the C copy hop (the ceiling for any relay process), built next to this script for the guest
const hop = spawnSync("gcc", ["-O2", "-pthread", "-o", path.join(here, "copy-hop"), path.join(here, "../../bench/c/copy-hop.c")], { encoding: "utf8" });
const hopNote = hop.status === 0 ? undefined : `copy-hop not built (${hop.error?.message ?? hop.stderr.trim().split("\n")[0]}): the cCopyHop mode is left out`;
if (hopNote) process.stderr.write(`bench/vm: ${hopNote}\n`);
const run = spawnSync(process.execPath, [path.join(here, "../test/vm/run.js"), "bench: throughput"], {
  encoding: "utf8",
  env: { ...process.env, CI: "" },
  maxBuffer: 64 << 20,
  timeout: 40 * 60_000,
});
const out = run.stdout ?? "";
const checks: string[] = [];
const skip = /# SKIP (.*)/.exec(out);
if (skip) {
  process.stderr.write(`bench/vm: VM NOT RUN: ${skip[1]}\n`);
  process.stdout.write(JSON.stringify({ bench: "vm-throughput", skipped: skip[1] }, null, 2) + "\n");
  process.exit(0);
}
const line = out.split("\n").find((l) => l.startsWith("# bench-json "));
if (!/^ok \d+ - vm: bench: throughput/m.test(out)) checks.push("the VM scenario did not pass");
if (line === undefined) checks.push("no bench-json line in the VM output");
let result: Record<string, unknown> = {};
if (line !== undefined) {
  const r = JSON.parse(line.slice("# bench-json ".length)) as { mbps: Record<string, number>; gadgetLocalMBps: number; runs: Record<string, number[]>; rounds: number; readsPerAttach: number; userspaceMaxInFlight: number };
  const direct = r.mbps.direct ?? 0;
  if (!(direct > 1)) checks.push(`implausible direct throughput ${direct} MB/s`);
  for (const [k, v] of Object.entries(r.runs)) if (v.length !== r.rounds * r.readsPerAttach) checks.push(`${k}: ${v.length} runs`);
  const ratio = (k: string) => Math.round(((r.mbps[k] ?? 0) / direct) * 1000) / 1000;
  result = {
    sizeMiB: 64,
    readSize: "1 MiB, O_DIRECT",
    rounds: r.rounds,
    mbps: { gadgetLocal: r.gadgetLocalMBps, ...r.mbps },
    ratio: { frontendRelay: ratio("frontendRelay"), backendRelay: ratio("backendRelay"), bothRelays: ratio("bothRelays"), nodeCopyHop: ratio("nodeCopyHop"), cCopyHop: ratio("cCopyHop"), userspaceVsUsbipHost: ratio("userspace") },
    ...(hopNote ? { cCopyHopSkipped: hopNote } : {}),
    userspaceMaxInFlight: r.userspaceMaxInFlight,
    target: 0.95,
    targetUserspace: 0.8,
    met: ratio("frontendRelay") >= 0.95 && ratio("backendRelay") >= 0.95,
    runs: r.runs,
  };
}
if (checks.length > 0) process.stderr.write(out.split("\n").filter((l) => l.startsWith("not ok") || l.startsWith("#")).slice(-40).join("\n") + "\n");
process.stdout.write(JSON.stringify({ bench: "vm-throughput", node: process.version, ...result, checks: checks.length === 0 ? "ok" : checks }, null, 2) + "\n");
process.exitCode = checks.length === 0 ? 0 : 1;
