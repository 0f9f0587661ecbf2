/**
 * The benches' C reference programs (bench/c/NAME.c), built with gcc next to the compiled bench
 * (dist/bench/NAME), where the VM guest finds them too.
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

/** Build bench/c/NAME.c: its path, or why it could not be built (gcc's first line). */
export function buildC(name: string): { path: string } | { why: string } {
  const out = path.join(here, name);
  const r = spawnSync("gcc", ["-O2", "-pthread", "-o", out, path.join(here, `../../bench/c/${name}.c`)], { encoding: "utf8" });
  return r.status === 0 ? { path: out } : { why: r.error?.message ?? r.stderr.trim().split("\n")[0] ?? `gcc exited ${r.status}` };
}
