/**
 * The VM suite, guest side: runs inside Debian's kernel (see ../run.ts), one scenario after
 * another, each setting up and tearing down its own gadgets and ending with a dmesg check
 * (BUG / Oops / general protection / WARNING fail it). Writes TAP to <results>/results.tap.
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { parseArgs } from "node:util";
import { dmesgMark, dmesgProblems, dmesgSince, processesMatching } from "./lib.js";
import { scenarios } from "./scenarios.js";

const { values, positionals } = parseArgs({ options: { results: { type: "string", default: "/run/results" } }, allowPositionals: true });
const tap = `${values.results}/results.tap`;
process.env.VM_RESULTS_TAP = tap; // scenarios may append comment lines (the throughput bench's JSON)
mkdirSync("/run/tmp", { recursive: true });
const emit = (line: string) => {
  appendFileSync(tap, line + "\n");
  process.stdout.write(line + "\n");
};

// VM_SET=core or smoke: that set only (runs on the kernels that do not get the full suite)
const set = process.env.VM_SET === "core" ? scenarios.filter((s) => s.core) : process.env.VM_SET === "smoke" ? scenarios.filter((s) => s.smoke) : scenarios;
const chosen = positionals.length > 0 ? set.filter((s) => positionals.some((p) => s.name.includes(p))) : set.filter((s) => !s.optional);
// VM_REPEAT=N runs the selection N times in this boot (to chase a scenario that fails now and then)
const repeat = Math.max(1, Number(process.env.VM_REPEAT ?? 1) || 1);
const selected = Array.from({ length: repeat }, () => chosen).flat();
emit(`# guest: kernel ${(await import("node:os")).release()}, ${selected.length} scenarios`);
let n = 0;
for (const s of selected) {
  n++;
  const since = dmesgMark();
  const t0 = Date.now();
  let failure: string | undefined;
  let note: string | undefined;
  try {
    note = (await s.run()) ?? undefined;
  } catch (e) {
    failure = e instanceof Error ? e.message : String(e);
  }
  const problems = dmesgProblems(since);
  if (failure === undefined && problems.length > 0 && !s.kernelLogIsTheResult) failure = `kernel log: ${problems.slice(0, 3).join(" | ")}`;
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (failure === undefined) emit(`ok ${n} - vm: ${s.name} (${secs} s)${note ? ` [${note}]` : ""}`);
  else {
    emit(`not ok ${n} - vm: ${s.name} (${secs} s)`);
    for (const l of failure.split("\n")) emit(`#   ${l}`);
    const tail = dmesgSince(since).slice(-15);
    for (const l of tail) emit(`#   dmesg: ${l}`);
  }
}
emit("# guest suite finished");
// A failed scenario may leave processes behind (a flow it waited for in vain): they would keep
// this process, and so the VM, alive until the host's timeout. Kill them and exit.
for (const p of processesMatching("usbip-qrexec")) {
  try {
    process.kill(Number(p.split(" ")[0]), "SIGKILL");
  } catch {
    /* gone */
  }
}
process.exit(0);
