/**
 * The host half every VM bench shares: boot the real-kernel VM once (test/vm/run.ts) for one
 * optional guest scenario, and take back its `# bench-json {...}` line. Without qemu the VM is
 * skipped loudly: the bench prints {"bench": NAME, "skipped": why} and exits 0, like the suite.
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export interface VmBenchRun {
  /** the guest's bench-json line, parsed; undefined when missing (a check says so) */
  json: unknown;
  /** "Linux VERSION" of the boot */
  kernel: string | null;
  /** what is wrong with the run itself (the scenario failed, no bench-json line) */
  checks: string[];
  /** the TAP output, for a failure's context */
  out: string;
}

export function runVmBench(bench: string, scenario: string, env: NodeJS.ProcessEnv = {}): VmBenchRun {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const run = spawnSync(process.execPath, [path.join(here, "../test/vm/run.js"), scenario], { encoding: "utf8", env: { ...process.env, CI: "", ...env }, maxBuffer: 64 << 20, timeout: 40 * 60_000 });
  const out = run.stdout ?? "";
  const skip = /# SKIP (.*)/.exec(out);
  if (skip) {
    process.stderr.write(`bench/${bench}: VM NOT RUN: ${skip[1]}\n`);
    process.stdout.write(JSON.stringify({ bench, skipped: skip[1] }, null, 2) + "\n");
    process.exit(0);
  }
  const checks: string[] = [];
  const escaped = scenario.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  if (!new RegExp(`^ok \\d+ - vm(\\[[^\\]]+\\])?:? ${escaped}`, "m").test(out)) checks.push("the VM scenario did not pass");
  const line = out.split("\n").find((l) => l.startsWith("# bench-json "));
  if (line === undefined) checks.push("no bench-json line in the VM output");
  const kernel = /# vm\[([^\]]+)\] VM suite: Linux ([^\s,]+)/.exec(out)?.[2] ?? null;
  return { json: line === undefined ? undefined : JSON.parse(line.slice("# bench-json ".length)), kernel, checks, out };
}

/** Print the bench's JSON (with its checks) and set the exit status; on a failed check, the TAP lines that say why go to stderr. */
export function reportVmBench(bench: string, run: VmBenchRun, result: Record<string, unknown>, checks: string[]): void {
  if (checks.length > 0) process.stderr.write(run.out.split("\n").filter((l) => l.startsWith("not ok") || l.startsWith("#")).slice(-40).join("\n") + "\n");
  process.stdout.write(JSON.stringify({ bench, node: process.version, kernel: run.kernel, ...result, checks: checks.length === 0 ? "ok" : checks }, null, 2) + "\n");
  process.exitCode = checks.length === 0 ? 0 : 1;
}
