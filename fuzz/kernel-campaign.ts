/**
 * `npm run fuzz:kernel -- --target vhci|usbip-host [--kernel 6.1|6.12|newest] [--minutes N]
 * [--seed S] [--rate R] [--fields F+F] [--validate]`: a kernel fuzzing campaign. Boots the VM once
 * (test/vm/run.ts) and runs the optional guest scenario "fuzz campaign"
 * (test/vm/guest/fuzz-campaign.ts): the disk workload through the mutating relay, seed after
 * seed, dmesg watched, each finding saved, replayed and shrunk. The guest's progress lines are
 * shown as they come; its findings are copied to fuzz-findings/<target>-<kernel>-<time>/ (seed,
 * mutations.log, shrunk.log, dmesg.txt, stderr.txt, summary.json). Ends with the line
 * `N messages mutated, K kernel errors, F findings`; exit 1 if the VM run itself failed.
 * Without qemu the VM is skipped loudly.
 */
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = path.dirname(fileURLToPath(import.meta.url));
const usage = "usage: npm run fuzz:kernel -- --target vhci|usbip-host [--device disk] [--kernel 6.1|6.12|newest] [--minutes N] [--seed S] [--rate R] [--fields F+F] [--validate]";

function fail(msg: string, code = 64): never {
  process.stderr.write(`fuzz:kernel: ${msg}\n${code === 64 ? `${usage}\n` : ""}`);
  process.exit(code);
}

let args: ReturnType<typeof parse>;
function parse() {
  return parseArgs({ options: { target: { type: "string" }, device: { type: "string", default: "disk" }, kernel: { type: "string", default: "6.1" }, minutes: { type: "string", default: "1" }, seed: { type: "string", default: "1" }, rate: { type: "string", default: "0.05" }, fields: { type: "string", default: "" }, validate: { type: "boolean", default: false }, help: { type: "boolean", short: "h" } }, strict: true });
}
try {
  args = parse();
} catch (e) {
  fail((e as Error).message);
}
const v = args.values;
if (v.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
if (v.target !== "vhci" && v.target !== "usbip-host") fail(`--target must be vhci or usbip-host${v.target ? `, not "${v.target}"` : ""}`);
if (v.device !== "disk") fail(`--device ${v.device}: only disk is wired into the campaign so far`);
const minutes = Number(v.minutes);
if (!(minutes > 0 && minutes <= 24 * 60)) fail(`--minutes must be a number of minutes above 0, not "${v.minutes}"`);
if (!/^\d+$/.test(v.seed!)) fail(`--seed must be a number, not "${v.seed}"`);
const rate = Number(v.rate);
if (!(rate >= 0 && rate <= 1)) fail(`--rate must be 0..1, not "${v.rate}"`);

const env = {
  ...process.env,
  CI: "",
  VM_KEEP: "1",
  VM_VERBOSE: "1",
  VM_KERNEL: v.kernel!,
  VM_TIMEOUT_S: String(Math.ceil(minutes * 60 * 3 + 600)),
  BENCH_FUZZ_TARGET: v.target,
  BENCH_FUZZ_SECONDS: String(Math.round(minutes * 60)),
  BENCH_FUZZ_SEED: v.seed!,
  BENCH_FUZZ_RATE: String(rate),
  BENCH_FUZZ_FIELDS: v.fields!,
  BENCH_FUZZ_VALIDATE: v.validate ? "1" : "0",
};
const child = spawn(process.execPath, [path.join(here, "../test/vm/run.js"), "fuzz campaign"], { env, stdio: ["ignore", "pipe", "pipe"] });
let out = "";
child.stdout.on("data", (b: Buffer) => (out += b.toString()));
// the guest's console: show the campaign's progress lines as they come
let partial = "";
child.stderr.on("data", (b: Buffer) => {
  partial += b.toString();
  const lines = partial.split("\n");
  partial = lines.pop()!;
  for (const l of lines) if (/# fuzz: /.test(l)) process.stderr.write(`${l.replace(/^.*# fuzz: /, "fuzz: ")}\n`);
});
child.on("close", (code) => {
  const skip = /# SKIP (.*)/.exec(out);
  if (skip) fail(`VM NOT RUN: ${skip[1]}`, 0);
  const logs = /logs in (\S+)/.exec(out)?.[1];
  const kernel = /VM suite: Linux ([^\s,]+)/.exec(out)?.[1] ?? v.kernel;
  const json = out.split("\n").find((l) => l.startsWith("# bench-json "));
  let copied = "";
  if (logs && existsSync(path.join(logs, "findings"))) {
    const dest = path.join(process.cwd(), "fuzz-findings", `${v.target}-${kernel}-${new Date().toISOString().replace(/[:.]/g, "-")}`);
    mkdirSync(dest, { recursive: true });
    cpSync(path.join(logs, "findings"), dest, { recursive: true });
    copied = dest;
  }
  if (logs && !process.env.VM_KEEP_LOGS) rmSync(logs, { recursive: true, force: true });
  if (json === undefined || !/^ok \d+ - /m.test(out)) {
    process.stderr.write(out.split("\n").filter((l) => l.startsWith("not ok") || l.startsWith("#")).slice(-30).join("\n") + "\n");
    fail(`the campaign's VM run failed (exit ${code})`, 1);
  }
  const r = JSON.parse(json.slice("# bench-json ".length)) as { runs: number; mutated: number; kernelErrors: number; findings: number };
  if (copied) process.stdout.write(`findings in ${copied} (seed-*/summary.json, mutations.log, shrunk.log, dmesg.txt)\n`);
  process.stdout.write(`${r.mutated} messages mutated, ${r.kernelErrors} kernel errors, ${r.findings} findings\n`);
});
