/**
 * `npm run fuzz:kernel -- --target vhci|usbip-host [--device D] [--kernel 6.1|6.12|newest]
 * [--minutes N] [--seed S] [--rate R] [--fields F+F] [--validate] [--shrink-boots N]`: a kernel
 * fuzzing campaign, and `npm run fuzz:kernel -- --replay DIR [--kernel K] [--replay-runs N]
 * [--validate]`: one finding replayed in a new boot (with --validate through the validating relay,
 * whatever the finding was made with).
 *
 * A campaign boots the VM (test/vm/run.ts) and runs the optional guest scenario "fuzz campaign"
 * (test/vm/guest/fuzz-campaign.ts): the device's workload through the mutating relay, seed after
 * seed, dmesg watched; a finding is saved, replayed and shrunk in that boot. A finding that
 * oopsed the kernel ends the boot: it is replayed here in a new boot ("fuzz replay") and, when
 * confirmed, shrunk across boots (one boot per candidate, at most --shrink-boots). Progress lines
 * show runs, messages mutated, findings and boots. Findings are copied to
 * fuzz-findings/<target>-<device>-<kernel>-<time>/seed-S/ (summary.json, mutations.log,
 * shrunk.log, dmesg.txt, stderr.txt, trace.pcapng: what the kernel received, each mutation the
 * comment of its packet). Ends with the line `N messages mutated, K kernel errors,
 * F findings`; exit 1 if a VM run itself failed. Without qemu the VM is skipped loudly.
 */
import { spawn } from "node:child_process";
import { appendFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DEVICES_OF, FUZZ_DEVICES, type FuzzDevice } from "./devices.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const DEVICES: readonly string[] = FUZZ_DEVICES;
const usage = [
  "usage: npm run fuzz:kernel -- --target vhci|usbip-host [--device disk|sourcesink|audio|camera|keyboard] [--kernel 6.1|6.12|newest]",
  "                              [--minutes N] [--seed S] [--rate R] [--fields F+F] [--validate] [--shrink-boots N]",
  "       npm run fuzz:kernel -- --replay FINDING_DIR [--kernel 6.1|6.12|newest] [--replay-runs N] [--validate]",
].join("\n");

function fail(msg: string, code = 64): never {
  process.stderr.write(`fuzz:kernel: ${msg}\n${code === 64 ? `${usage}\n` : ""}`);
  process.exit(code);
}

const options = {
  target: { type: "string" },
  device: { type: "string", default: "disk" },
  kernel: { type: "string", default: "6.1" },
  minutes: { type: "string", default: "1" },
  seed: { type: "string", default: "1" },
  rate: { type: "string", default: "0.05" },
  fields: { type: "string", default: "" },
  validate: { type: "boolean", default: false },
  "shrink-boots": { type: "string", default: "4" },
  replay: { type: "string" },
  "replay-runs": { type: "string", default: "10" },
  help: { type: "boolean", short: "h" },
} as const;
let v: ReturnType<typeof parseArgs<{ options: typeof options; strict: true }>>["values"];
try {
  v = parseArgs({ options, strict: true }).values;
} catch (e) {
  fail((e as Error).message);
}
if (v.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const count = (name: string, text: string, most: number) => {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > most) fail(`--${name} must be a whole number 0..${most}, not "${text}"`);
  return n;
};
const replayRuns = count("replay-runs", v["replay-runs"]!, 100);
const shrinkBoots = count("shrink-boots", v["shrink-boots"]!, 100);
if (!["6.1", "6.12", "newest"].includes(v.kernel!) && !/^\d+\.\d+/.test(v.kernel!)) fail(`--kernel must be 6.1, 6.12, newest or a version, not "${v.kernel}"`);

interface Boot {
  ok: boolean;
  out: string;
  json: Record<string, unknown> | undefined;
  /** the run's results share (kept until copied) */
  logs: string | undefined;
  kernel: string;
}

let boots = 0;
const progress = (s: string) => process.stderr.write(`fuzz: ${s}\n`);

/** One boot running the guest scenario `scenario` with the BENCH_FUZZ_* settings `fuzzEnv`. */
function boot(scenario: string, fuzzEnv: Record<string, string>, seconds: number): Promise<Boot> {
  boots++;
  const env: NodeJS.ProcessEnv = { ...process.env, CI: "", VM_KEEP: "1", VM_VERBOSE: "1", VM_KERNEL: v.kernel!, VM_TIMEOUT_S: String(Math.ceil(seconds * 3 + 600)) };
  for (const [k, x] of Object.entries(fuzzEnv)) env[`BENCH_FUZZ_${k}`] = x;
  const child = spawn(process.execPath, [path.join(here, "../test/vm/run.js"), scenario], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (b: Buffer) => (out += b.toString()));
  // the guest's console: show the campaign's progress lines as they come, with the boot count
  let partial = "";
  const consoleLog = path.join(tmpdir(), `fuzz-kernel-boot-${process.pid}-${boots}.console.log`);
  progress(`boot ${boots}: ${scenario.replace(/:$/, "")} on ${v.kernel}; the guest's console in ${consoleLog}`);
  child.stderr.on("data", (b: Buffer) => {
    appendFileSync(consoleLog, b);
    partial += b.toString();
    const lines = partial.split("\n");
    partial = lines.pop()!;
    for (const l of lines) if (/# fuzz: /.test(l)) progress(`boot ${boots}: ${l.replace(/^.*# fuzz: /, "")}`);
  });
  return new Promise((resolve) => {
    child.on("close", () => {
      const skip = /# SKIP (.*)/.exec(out);
      if (skip) fail(`VM NOT RUN: ${skip[1]}`, 0);
      const line = out.split("\n").find((l) => l.startsWith("# bench-json "));
      resolve({
        ok: line !== undefined && /^ok \d+ - /m.test(out),
        out,
        json: line === undefined ? undefined : (JSON.parse(line.slice("# bench-json ".length)) as Record<string, unknown>),
        logs: /logs in (\S+)/.exec(out)?.[1],
        kernel: /VM suite: Linux ([^\s,]+)/.exec(out)?.[1] ?? v.kernel!,
      });
    });
  });
}

function failedBoot(b: Boot): never {
  process.stderr.write(b.out.split("\n").filter((l) => l.startsWith("not ok") || l.startsWith("#")).slice(-30).join("\n") + "\n");
  fail(`the VM run failed${b.logs ? ` (logs in ${b.logs})` : ""}`, 1);
}

const dropLogs = (b: Boot) => b.logs && !process.env.VM_KEEP_LOGS && rmSync(b.logs, { recursive: true, force: true });

interface Summary {
  target: string;
  device: string;
  validate: boolean;
  seed?: number;
  mutations?: number;
  confirmed?: boolean | string;
  shrunkTo?: number;
  /** the sourcesink workload's usbtest cases and iterations */
  cases?: string;
  iterations?: string;
  [k: string]: unknown;
}

/** Replay `log` in a new boot; the run's stderr and trace are kept in `keepIn` (replay-stderr.txt, replay-trace.pcapng) when given (a campaign's own finding, not a kept one). */
async function replayBoot(s: Summary, log: string, keepIn?: string): Promise<{ confirmed: boolean; hurt: boolean; complaints: string[]; runs: number }> {
  const workload = { ...(s.cases ? { CASES: String(s.cases) } : {}), ...(s.iterations ? { ITERATIONS: String(s.iterations) } : {}) };
  const b = await boot("fuzz replay:", { TARGET: s.target, DEVICE: s.device, VALIDATE: s.validate ? "1" : "0", REPLAY: path.resolve(log), REPLAY_RUNS: String(replayRuns), ...workload }, 600);
  if (!b.ok || b.json === undefined) failedBoot(b);
  for (const f of ["replay-stderr.txt", "replay-trace.pcapng"]) if (keepIn && b.logs && existsSync(path.join(b.logs, f))) cpSync(path.join(b.logs, f), path.join(keepIn, f));
  dropLogs(b);
  return b.json as unknown as { confirmed: boolean; hurt: boolean; complaints: string[]; runs: number };
}

const mutationLines = (file: string) => readFileSync(file, "utf8").split("\n").filter((l) => /fuzz: message \d+ \(seqnum \d+\) \w+: .* -> /.test(l));

/** A finding the campaign could not replay in its boot (the kernel oopsed): confirm it in a new boot, then shrink it boot by boot. */
async function confirmAcrossBoots(dir: string): Promise<void> {
  const file = path.join(dir, "summary.json");
  const s = JSON.parse(readFileSync(file, "utf8")) as Summary;
  const log = path.join(dir, "mutations.log");
  progress(`seed ${s.seed}: replaying its ${s.mutations} mutations in a new boot (up to ${replayRuns} runs)`);
  const first = await replayBoot(s, log, dir);
  let keep = mutationLines(log);
  let tries = 0;
  if (first.confirmed) {
    // ddmin over the log's lines, one boot per candidate
    for (let chunk = Math.ceil(keep.length / 2); chunk >= 1 && tries < shrinkBoots; chunk = chunk === 1 ? 0 : Math.ceil(chunk / 2)) {
      for (let at = 0; at < keep.length && tries < shrinkBoots && keep.length > 0; ) {
        const candidate = [...keep.slice(0, at), ...keep.slice(at + chunk)];
        const cand = path.join(dir, "candidate.log");
        writeFileSync(cand, candidate.join("\n") + (candidate.length ? "\n" : ""));
        tries++;
        if ((await replayBoot(s, cand)).confirmed) keep = candidate;
        else at += chunk;
      }
    }
    writeFileSync(path.join(dir, "shrunk.log"), keep.join("\n") + (keep.length ? "\n" : ""));
  }
  writeFileSync(path.join(dir, "replay-dmesg.txt"), first.complaints.join("\n") + "\n");
  const after = { ...s, confirmed: first.confirmed ? `in a new boot (run ${first.runs} of ${replayRuns})` : `not in a new boot (${first.runs} runs)`, replayHurt: first.hurt, shrunkTo: first.confirmed ? keep.length : undefined, shrinkBoots: tries };
  writeFileSync(file, JSON.stringify(after, null, 2) + "\n");
  progress(`seed ${s.seed}: ${after.confirmed}${first.confirmed ? `; shrunk ${s.mutations} -> ${keep.length} mutations in ${tries} boots` : ""}`);
}

async function replayCommand(dir: string): Promise<void> {
  const file = path.join(dir, "summary.json");
  if (!existsSync(file) || !existsSync(path.join(dir, "mutations.log"))) fail(`--replay ${dir}: not a finding's directory (no summary.json and mutations.log)`);
  const saved = JSON.parse(readFileSync(file, "utf8")) as Summary;
  // --validate: the same mutations through the validating relay (does the relay protect the kernel from them?)
  const s = { ...saved, validate: saved.validate || v.validate! };
  const log = existsSync(path.join(dir, "shrunk.log")) ? path.join(dir, "shrunk.log") : path.join(dir, "mutations.log");
  progress(`replaying ${path.relative(process.cwd(), log) || log} (${mutationLines(log).length} mutations; target ${s.target}, device ${s.device}${s.validate ? ", validated" : ""}) on ${v.kernel}`);
  const r = await replayBoot(s, log);
  process.stdout.write(`${r.confirmed ? "reproduced" : "not reproduced"} in ${r.runs} run${r.runs === 1 ? "" : "s"} of one boot${r.hurt ? " (the kernel was hurt)" : ""}${r.complaints[0] ? `: ${r.complaints[0]}` : ""}\n`);
  process.exit(r.confirmed ? 0 : 1);
}

async function campaignCommand(): Promise<void> {
  if (v.target !== "vhci" && v.target !== "usbip-host") fail(`--target must be vhci or usbip-host${v.target ? `, not "${v.target}"` : ""}`);
  if (!DEVICES.includes(v.device!)) fail(`--device must be one of ${DEVICES.join(", ")}, not "${v.device}"`);
  if (!DEVICES_OF[v.target].includes(v.device as FuzzDevice)) fail(`--device ${v.device} has no usbip-host side in the VM (usbip-host refuses vhci devices; neither qemu nor dummy_hcd has one): use --target vhci`);
  const minutes = Number(v.minutes);
  if (!(minutes > 0 && minutes <= 24 * 60)) fail(`--minutes must be a number of minutes above 0, not "${v.minutes}"`);
  if (!/^\d+$/.test(v.seed!)) fail(`--seed must be a number, not "${v.seed}"`);
  const rate = Number(v.rate);
  if (!(rate >= 0 && rate <= 1)) fail(`--rate must be 0..1, not "${v.rate}"`);
  const seconds = Math.round(minutes * 60);
  const b = await boot("fuzz campaign:", { TARGET: v.target, DEVICE: v.device!, SECONDS: String(seconds), SEED: v.seed!, RATE: String(rate), FIELDS: v.fields!, VALIDATE: v.validate ? "1" : "0" }, seconds);
  if (!b.ok || b.json === undefined) failedBoot(b);
  const r = b.json as { runs: number; mutated: number; kernelErrors: number; findings: number; found: Array<{ dir: string; confirmed: unknown }> };
  let dest = "";
  if (b.logs && existsSync(path.join(b.logs, "findings"))) {
    dest = path.join(process.cwd(), "fuzz-findings", `${v.target}-${v.device}-${b.kernel}-${new Date().toISOString().replace(/[:.]/g, "-")}`);
    mkdirSync(dest, { recursive: true });
    cpSync(path.join(b.logs, "findings"), dest, { recursive: true });
  }
  dropLogs(b);
  for (const f of r.found.filter((x) => x.confirmed === "needs a new boot")) await confirmAcrossBoots(path.join(dest, f.dir));
  if (dest) process.stdout.write(`findings in ${dest} (seed-*/summary.json, mutations.log, shrunk.log, dmesg.txt, trace.pcapng)\n`);
  process.stdout.write(`${r.runs} runs in ${boots} boot${boots === 1 ? "" : "s"}\n`);
  process.stdout.write(`${r.mutated} messages mutated, ${r.kernelErrors} kernel errors, ${r.findings} findings\n`);
}

await (v.replay !== undefined ? replayCommand(v.replay) : campaignCommand());
