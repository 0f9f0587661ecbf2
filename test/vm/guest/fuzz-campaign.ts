/**
 * The kernel fuzzing campaign's VM half (optional: runs only when selected by name, from
 * fuzz/kernel-campaign.ts, `npm run fuzz:kernel`). Runs a device's workload (fuzz-workloads.ts:
 * disk, sourcesink, audio, camera, keyboard) again and again through the mutating relay — target
 * vhci: `import --mode relay --fuzz` (RET_* mutated toward vhci-hcd); target usbip-host: `export
 * --mode relay --fuzz` (CMD_* mutated toward usbip-host) — each run with the next seed,
 * unvalidated unless BENCH_FUZZ_VALIDATE=1, and watches dmesg for what a kernel says when it is
 * hurt: BUG, Oops, general protection, WARNING, hung tasks, and usbip's own complaints. A run
 * whose kernel complained is a finding: its seed, mutation log, dmesg excerpt, stderr and the
 * pcapng trace of what the kernel received (the relay's `--trace`; with validation off the
 * fuzzing stage's, each mutation the packet's comment) go to findings/seed-S/ in the results share; it is replayed from its log (--fuzz-replay) to confirm,
 * and the log is shrunk (delta debugging over its lines) to the smallest part that still makes
 * the kernel complain. A finding that oopsed the kernel ends the boot's campaign: the host side
 * replays and shrinks it in new boots ("fuzz replay" below). Parameters (BENCH_FUZZ_* env,
 * passed through by the VM runner): TARGET, DEVICE, SECONDS, SEED, RATE, FIELDS, VALIDATE,
 * SHRINK_TRIES; for a replay REPLAY (a mutation log on the host) and REPLAY_RUNS.
 * Result: `N messages mutated, K kernel errors, F findings` as the TAP note, and a bench-json line.
 */
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Scenario } from "./scenarios.js";
import { check, dmesgMark, dmesgSince, modprobe, sh, sleep, waitFor } from "./lib.js";
import { cli, ourProcesses, repo, vhciPorts } from "./flows.js";
import { DEVICES_OF, FUZZ_DEVICES, makeWorkload, SOURCESINK_CASES, SOURCESINK_ITERATIONS, type FuzzDevice, type FuzzTarget, type Workload } from "./fuzz-workloads.js";

/** What a kernel says when a mutation hurt it (dmesg lines). */
export const KERNEL_COMPLAINTS = /\bBUG\b|Oops|general protection|WARNING:|hung_task|blocked for more than|cannot find a urb|recv xbuf|recv iso|invalid num packets|unknown pdu|malicious|submit_urb error|recv invalid request|stub_rx|Call Trace/i;
/** The complaints after which this boot's kernel cannot be trusted: a replay needs a new boot. */
export const KERNEL_HURT = /\bBUG\b|Oops|general protection|Call Trace|stuck in the kernel/;

interface RunResult {
  mutations: string[];
  complaints: string[];
  stderr: string;
  /** what the workload did */
  workload: string;
  /** the run's pcapng trace: what the target kernel received (and sent back) */
  trace: string;
}

const env = (k: string, d: string) => process.env[`BENCH_FUZZ_${k}`] ?? d;
const MUTATION_LINE = /fuzz: message \d+ \(seqnum \d+\) \w+: .* -> /;
/** each run's trace (overwritten by the next; a finding keeps a copy) */
const TRACE = "/run/tmp/fuzz-run.pcapng";

/** The relay's fuzzing arguments for a mutation log: a replay, or (no mutation in it) a stage that mutates nothing. */
export const replayArgs = (log: string) => (readFileSync(log, "utf8").split("\n").some((l) => MUTATION_LINE.test(l)) ? ["--fuzz-replay", log] : ["--fuzz", "0,rate=0"]);

/** One workload run through the mutating relay; `fuzz` is ["--fuzz", SPEC] or ["--fuzz-replay", FILE]. */
async function runOnce(w: Workload, fuzz: string[], validate: boolean): Promise<RunResult> {
  const since = dmesgMark();
  const statefile = "/run/tmp/state-fuzz-campaign";
  rmSync(TRACE, { force: true });
  const flow = w.flow([...fuzz, ...(validate ? [] : ["--no-validate"]), "--trace", TRACE], statefile);
  const port = await waitFor("the imported device", () => {
    if (flow.child.exitCode !== null) return "gone";
    return vhciPorts().find((x) => x.status === 6 && x.local !== "0-0")?.local;
  }, 30_000).catch(() => "never");
  const workload = port === "gone" || port === "never" ? `the device was ${port === "gone" ? "gone before" : "never"} imported` : await w.use(port);
  if (flow.child.exitCode === null) {
    // bounded: a hurt kernel can leave the detach waiting forever
    await Promise.race([cli(["detach", "--statefile", statefile]).exited, sleep(30_000)]);
    const r = await Promise.race([flow.exited, sleep(20_000).then(() => undefined)]);
    if (r === undefined) flow.child.kill("SIGKILL");
  }
  await Promise.race([flow.exited, sleep(10_000)]);
  // leave nothing for the next run: free ports, no process, the device back on its driver
  await waitFor("vhci ports free", () => vhciPorts().every((p) => p.status === 4), 30_000).catch(() => {
    for (const p of vhciPorts().filter((x) => x.status !== 4)) sh("sh", ["-c", `echo ${p.port} > /sys/devices/platform/vhci_hcd.0/detach`], { allowFail: true, timeoutMs: 10_000 });
  });
  await waitFor("no process of ours left", () => ourProcesses().length === 0, 20_000).catch(() => {
    for (const p of ourProcesses()) sh("kill", ["-9", p.split(" ")[0]!], { allowFail: true });
  });
  const stuck = workload.includes("stuck in the kernel");
  // a task stuck in the kernel: wait for the hung-task detector's report (after 120 s) as the evidence
  // (not needed when the kernel already said why: an oops)
  if (stuck && !dmesgSince(since).some((l) => KERNEL_HURT.test(l))) await waitFor("the hung-task report", () => dmesgSince(since).some((l) => /blocked for more than/.test(l)), 150_000, 1000).catch(() => {});
  else await w.restored();
  const stderr = flow.stderr();
  const complaints = dmesgSince(since).filter((l) => KERNEL_COMPLAINTS.test(l));
  if (stuck) complaints.push(`the workload is stuck in the kernel: ${workload}`);
  return { mutations: stderr.split("\n").filter((l) => MUTATION_LINE.test(l)), complaints, stderr, workload, trace: TRACE };
}

export interface CampaignOptions {
  target: FuzzTarget;
  device: FuzzDevice;
  seconds: number;
  seed: number;
  rate: string;
  fields: string;
  validate: boolean;
  shrinkTries: number;
  /** where findings/ goes */
  results: string;
}

export interface CampaignResult {
  runs: number;
  mutated: number;
  kernelErrors: number;
  findings: number;
  /** the first few distinct kernel complaints (timestamps off) */
  said: string[];
  /** the mutations of the last run (whose trace is left in TRACE) */
  lastMutated: number;
  /** per finding: its directory, whether the replay confirmed it, and the log's length before and after shrinking */
  found: Array<{ dir: string; seed: number; confirmed: boolean | "needs a new boot"; before: number; after: number }>;
}

function saveFinding(dir: string, r: RunResult): string {
  mkdirSync(dir, { recursive: true });
  const log = path.join(dir, "mutations.log");
  writeFileSync(log, r.mutations.join("\n") + (r.mutations.length ? "\n" : ""));
  writeFileSync(path.join(dir, "dmesg.txt"), r.complaints.join("\n") + "\n");
  writeFileSync(path.join(dir, "stderr.txt"), r.stderr);
  if (existsSync(r.trace)) copyFileSync(r.trace, path.join(dir, "trace.pcapng"));
  return log;
}

// BENCH_FUZZ_VERBOSE=1: the flows log with --verbose (their stderr is kept with each finding)
if (env("VERBOSE", "0") === "1") process.env.USBIP_QREXEC_VERBOSE = "1";

export async function campaign(o: CampaignOptions): Promise<CampaignResult> {
  const { target, device, seconds, rate, fields, validate, shrinkTries } = o;
  const found: CampaignResult["found"] = [];
  modprobe("vhci-hcd", "usbip-host");
  const w = await makeWorkload(target, device, "/run/tmp/fuzz-campaign.img");
  const findingsDir = path.join(o.results, "findings");
  let mutated = 0;
  let kernelErrors = 0;
  let findings = 0;
  let runs = 0;
  const end = Date.now() + seconds * 1000;
  // what the workload was, so that a replay runs the same (the usbtest cases are a knob)
  const base = { target, device, rate, fields, validate, ...(device === "sourcesink" ? { cases: SOURCESINK_CASES.join(","), iterations: SOURCESINK_ITERATIONS } : {}) };
  let hurt = false;
  let lastMutated = 0;
  const said: string[] = [];
  try {
    for (let seed = o.seed; Date.now() < end; seed++) {
      const spec = `${seed},rate=${rate}${fields ? `,fields=${fields}` : ""}`;
      const r = await runOnce(w, ["--fuzz", spec], validate);
      runs++;
      mutated += r.mutations.length;
      lastMutated = r.mutations.length;
      kernelErrors += r.complaints.length;
      for (const l of r.complaints.map((x) => x.replace(/^\[\s*\d+\.\d+\]\s*/, "").slice(0, 160))) if (said.length < 5 && !said.includes(l)) said.push(l);
      console.log(`# fuzz: run ${runs} (seed ${seed}, ${r.workload}): ${r.mutations.length} mutated, ${r.complaints.length} kernel errors; so far ${mutated} mutated, ${kernelErrors} kernel errors, ${findings} findings`);
      if (r.complaints.length === 0) continue;
      hurt = r.complaints.some((l) => KERNEL_HURT.test(l));
      // a complaint with no mutation made is the workload's own, not a finding, unless it hurt the kernel
      if (r.mutations.length === 0 && !hurt) continue;
      findings++;
      const dir = path.join(findingsDir, `seed-${seed}`);
      const log = saveFinding(dir, r);
      if (hurt) {
        // the kernel is hurt for good in this boot: replaying here proves nothing; a new boot does
        writeFileSync(path.join(dir, "summary.json"), JSON.stringify({ ...base, seed, spec, mutations: r.mutations.length, confirmed: "needs a new boot (the kernel was hurt: an oops, or a task stuck in it)", firstComplaint: r.complaints[0] }, null, 2) + "\n");
        console.log(`# fuzz: finding seed ${seed}: the kernel is hurt (${r.complaints.find((l) => KERNEL_HURT.test(l))?.slice(0, 120)}); this boot's campaign stops (the replay needs a new boot)`);
        found.push({ dir, seed, confirmed: "needs a new boot", before: r.mutations.length, after: r.mutations.length });
        break;
      }
      // replay the whole log: does the kernel complain again?
      const again = await runOnce(w, replayArgs(log), validate);
      const confirmed = again.complaints.length > 0;
      console.log(`# fuzz: finding seed ${seed}: ${r.complaints[0]?.slice(0, 100)}; the replay ${confirmed ? "confirms it" : "does not confirm it"}`);
      // shrink: drop chunks of the log while the kernel still complains (ddmin, bounded)
      let keep = r.mutations;
      let tries = 0;
      for (let chunk = Math.ceil(keep.length / 2); confirmed && chunk >= 1 && tries < shrinkTries; chunk = chunk === 1 ? 0 : Math.ceil(chunk / 2)) {
        for (let at = 0; at < keep.length && tries < shrinkTries && keep.length > 1; ) {
          const candidate = [...keep.slice(0, at), ...keep.slice(at + chunk)];
          const file = path.join(dir, "candidate.log");
          writeFileSync(file, candidate.join("\n") + "\n");
          tries++;
          const still = (await runOnce(w, replayArgs(file), validate)).complaints.length > 0;
          console.log(`# fuzz: shrinking seed ${seed}: try ${tries} of ${shrinkTries} without ${Math.min(chunk, keep.length - at)} of ${keep.length} mutations: the kernel ${still ? "still complains" : "is silent"}`);
          if (still) keep = candidate;
          else at += chunk;
        }
      }
      writeFileSync(path.join(dir, "shrunk.log"), keep.join("\n") + "\n");
      writeFileSync(path.join(dir, "summary.json"), JSON.stringify({ ...base, seed, spec, mutations: r.mutations.length, confirmed, shrunkTo: keep.length, shrinkTries: tries, firstComplaint: r.complaints[0] }, null, 2) + "\n");
      console.log(`# fuzz: finding seed ${seed}: ${r.complaints[0]?.slice(0, 100)}; replay ${confirmed ? "confirms" : "does not confirm"}; shrunk ${r.mutations.length} -> ${keep.length} mutations in ${tries} tries`);
      found.push({ dir, seed, confirmed, before: r.mutations.length, after: keep.length });
    }
  } finally {
    // after an oops the device is left as it is: taking a gadget off its UDC can block for good
    // in a hurt kernel, and the boot is spoiled anyway
    if (!hurt) w.remove();
  }
  return { runs, mutated, kernelErrors, findings, said, lastMutated, found };
}

const summary = (r: CampaignResult, o: Pick<CampaignOptions, "target" | "device" | "validate">) => `${r.mutated} messages mutated, ${r.kernelErrors} kernel errors, ${r.findings} findings (${r.runs} runs, target ${o.target}, device ${o.device}${o.validate ? ", validated" : ""})`;

function targetAndDevice(): { target: FuzzTarget; device: FuzzDevice } {
  const target = env("TARGET", "vhci");
  check(target === "vhci" || target === "usbip-host", `BENCH_FUZZ_TARGET must be vhci or usbip-host, not ${target}`);
  const device = env("DEVICE", "disk") as FuzzDevice;
  check(FUZZ_DEVICES.includes(device), `BENCH_FUZZ_DEVICE must be one of ${FUZZ_DEVICES.join(", ")}, not ${device}`);
  check(DEVICES_OF[target].includes(device), `no ${device} device can be fuzzed toward ${target} in the VM`);
  return { target, device };
}

function benchJson(o: object): void {
  const line = `# bench-json ${JSON.stringify(o)}\n`;
  if (process.env.VM_RESULTS_TAP) appendFileSync(process.env.VM_RESULTS_TAP, line);
  else process.stdout.write(line);
}

/** `npm run fuzz:kernel`'s guest half: the campaign as the BENCH_FUZZ_* environment says. */
export const fuzzCampaign: Scenario = {
  name: "fuzz campaign: a device's workload through the mutating relay, seed after seed, dmesg watched; findings saved, replayed and shrunk",
  optional: true,
  kernelLogIsTheResult: true,
  async run() {
    const o: CampaignOptions = { ...targetAndDevice(), seconds: Number(env("SECONDS", "60")), seed: Number(env("SEED", "1")), rate: env("RATE", "0.05"), fields: env("FIELDS", ""), validate: env("VALIDATE", "0") === "1", shrinkTries: Number(env("SHRINK_TRIES", "12")), results: path.dirname(process.env.VM_RESULTS_TAP ?? "/run/results/results.tap") };
    const r = await campaign(o);
    benchJson({ target: o.target, device: o.device, validate: o.validate, runs: r.runs, mutated: r.mutated, kernelErrors: r.kernelErrors, findings: r.findings, said: r.said, found: r.found.map((f) => ({ seed: f.seed, confirmed: f.confirmed, before: f.before, after: f.after, dir: path.basename(f.dir) })) });
    return summary(r, o);
  },
};

/**
 * `npm run fuzz:kernel -- --replay DIR`'s guest half, and the campaign's next boot after an
 * oops: the workload through the relay replaying one mutation log (BENCH_FUZZ_REPLAY, a file of
 * the host's, read through the read-only root share), up to BENCH_FUZZ_REPLAY_RUNS times until
 * the kernel complains. A race needs its timing: one boot may take more than one run. Result: a
 * bench-json line {confirmed, hurt, runs, complaints}; the dmesg excerpt in replay-dmesg.txt, the
 * last run's stderr and trace in replay-stderr.txt and replay-trace.pcapng.
 */
export const fuzzReplay: Scenario = {
  name: "fuzz replay: one mutation log through the relay, the workload again, dmesg watched",
  optional: true,
  kernelLogIsTheResult: true,
  async run() {
    const { target, device } = targetAndDevice();
    const log = env("REPLAY", "");
    check(log !== "" && existsSync(log), `BENCH_FUZZ_REPLAY names no readable file: "${log}"`);
    const validate = env("VALIDATE", "0") === "1";
    const most = Number(env("REPLAY_RUNS", "10"));
    modprobe("vhci-hcd", "usbip-host");
    const w = await makeWorkload(target, device, "/run/tmp/fuzz-campaign.img");
    let runs = 0;
    let complaints: string[] = [];
    let stderr = "";
    try {
      while (runs < most && complaints.length === 0) {
        const r = await runOnce(w, replayArgs(log), validate);
        runs++;
        complaints = r.complaints;
        stderr = r.stderr;
        console.log(`# fuzz: replay run ${runs} (${r.workload}): ${r.mutations.length} mutations made, ${r.complaints.length} kernel errors`);
      }
    } finally {
      // a hurt kernel can block the device's removal for good; the boot ends anyway
      if (!complaints.some((l) => KERNEL_HURT.test(l))) w.remove();
    }
    const results = path.dirname(process.env.VM_RESULTS_TAP ?? "/run/results/results.tap");
    writeFileSync(path.join(results, "replay-dmesg.txt"), complaints.join("\n") + "\n");
    writeFileSync(path.join(results, "replay-stderr.txt"), stderr);
    if (existsSync(TRACE)) copyFileSync(TRACE, path.join(results, "replay-trace.pcapng"));
    const hurt = complaints.some((l) => KERNEL_HURT.test(l));
    benchJson({ replay: true, target, device, validate, confirmed: complaints.length > 0, hurt, runs, complaints: complaints.slice(0, 5) });
    return `${complaints.length > 0 ? `confirmed in run ${runs}` : `not confirmed in ${runs} runs`}${hurt ? " (the kernel was hurt)" : ""}: ${complaints[0]?.slice(0, 120) ?? "the kernel said nothing"}`;
  },
};

/**
 * The campaign's machinery, on one kernel: a short vhci campaign with a planted finding (each
 * RET's start_frame or seqnum mutated: vhci-hcd reports the first unknown seqnum, "cannot find a
 * urb of seqnum") found, saved, replayed and shrunk to fewer mutations (the start_frame ones go); and a short usbip-host campaign that mutates, logs and leaves
 * the gadget on its driver.
 */
export const fuzzCampaignMachinery: Scenario = {
  name: "fuzz campaign machinery: a planted finding on vhci (mutated seqnums) detected, saved, replayed and shrunk; a usbip-host campaign mutates and cleans up",
  async run() {
    const results = "/run/tmp/fuzz-machinery";
    // start_frame is copied, never checked, by vhci-hcd for a non-iso URB: mutations the shrinking must drop
    const planted = await campaign({ target: "vhci", device: "disk", seconds: 1, seed: 3, rate: "1", fields: "start_frame+seqnum", validate: false, shrinkTries: 10, results });
    check(planted.mutated > 0, "no mutation made");
    check(planted.findings >= 1 && planted.found.length >= 1, `the planted finding was not found: ${summary(planted, { target: "vhci", device: "disk", validate: false })}`);
    const f = planted.found[0]!;
    for (const file of ["mutations.log", "dmesg.txt", "stderr.txt", "shrunk.log", "summary.json", "trace.pcapng"]) check(existsSync(path.join(f.dir, file)), `${file} not saved in ${f.dir}`);
    // the trace shows what vhci-hcd received: each mutation the comment of the packet it made
    const trace = readFileSync(path.join(f.dir, "trace.pcapng"));
    const firstMutation = readFileSync(path.join(f.dir, "mutations.log"), "utf8").split("\n")[0]!.replace(/^.*?(fuzz: message)/, "$1");
    check(trace.includes(firstMutation), `the trace has no packet with the comment "${firstMutation}"`);
    check(/cannot find a urb of seqnum/.test(readFileSync(path.join(f.dir, "dmesg.txt"), "utf8")), "the finding's dmesg does not show vhci-hcd's complaint");
    check(f.confirmed === true, "the replay from the mutation log did not confirm the finding");
    check(f.before > 1 && f.after < f.before, `not shrunk: ${f.before} -> ${f.after}`);
    const host = await campaign({ target: "usbip-host", device: "disk", seconds: 20, seed: 1, rate: "0.05", fields: "transfer_flags+start_frame", validate: false, shrinkTries: 2, results });
    check(host.runs > 0 && host.mutated > 0, `the usbip-host campaign mutated nothing: ${summary(host, { target: "usbip-host", device: "disk", validate: false })}`);
    // its last run's trace (the fuzzing stage's, no relay): the CMDs as usbip-host got them, the mutated ones with their comment, and its answers
    const events = sh("tshark", ["-r", TRACE, "-T", "fields", "-e", "usb.urb_type", "-e", "frame.comment"], { timeoutMs: 180_000 }).trim().split("\n").map((l) => l.split("\t"));
    const submits = events.filter(([type]) => type === "'S'").length;
    const completions = events.filter(([type]) => type === "'C'").length;
    const commented = events.filter(([, comment]) => /^fuzz: message \d+ \(seqnum \d+\) (transfer_flags|start_frame): /.test(comment ?? "")).length;
    check(submits > 0 && completions > 0, `the usbip-host trace lacks submits or answers: ${submits} S, ${completions} C`);
    // these two fields change one word in place: one packet per mutation
    check(commented === host.lastMutated, `the last run made ${host.lastMutated} mutations, its trace shows ${commented}`);
    return `vhci: ${summary(planted, { target: "vhci", device: "disk", validate: false })}, shrunk ${f.before} -> ${f.after}; usbip-host: ${summary(host, { target: "usbip-host", device: "disk", validate: false })}; its last trace: ${submits} submits, ${completions} completions, ${commented} mutated`;
  },
};

/**
 * The findings the relay was fixed for, replayed through it (fuzz/kernel-findings/): a backend
 * that answers neither a URB nor its unlink (vhci-unlink-never-answered-6.12: the RET_SUBMIT of
 * seqnum 13 dropped on its way, and usbip-host queues the RET_UNLINK of a completed URB without
 * sending it). Without the frontend relay's unlink deadline, usbtest's task waited in
 * usb_kill_urb until the port was detached; with it the relay answers the unlink, the test case
 * fails and the rest run.
 */
export const fuzzRegressions: Scenario = {
  name: "fuzz regression (vhci-unlink-never-answered-6.12): a RET_SUBMIT lost on the way and its unlink never answered — the frontend relay answers at its deadline, usbtest's task is not left in the kernel, the kernel silent",
  async run() {
    const dir = path.join(repo, "fuzz/kernel-findings/vhci-unlink-never-answered-6.12");
    modprobe("vhci-hcd", "usbip-host");
    const w = await makeWorkload("vhci", "sourcesink", "/run/tmp/fuzz-regression.img");
    // the relay's statistics (its end line) are an info line
    const verbose = process.env.USBIP_QREXEC_VERBOSE;
    process.env.USBIP_QREXEC_VERBOSE = "1";
    try {
      const r = await runOnce(w, replayArgs(path.join(dir, "shrunk.log")), true);
      check(r.mutations.length === 1 && /drop: sent -> dropped/.test(r.mutations[0]!), `the replay did not drop the RET_SUBMIT: ${r.mutations.join(" | ") || "no mutation made"}`);
      check(!/stuck in the kernel|stopped after/.test(r.workload), `usbtest did not finish: ${r.workload}`);
      check(r.complaints.length === 0, `the kernel complained: ${r.complaints.slice(0, 3).join(" | ")}`);
      const m = /relay ended \([^)]*\): (\{[^}]*\})/.exec(r.stderr);
      check(m !== null, `no relay statistics: ${r.stderr.trim().split("\n").slice(-5).join(" | ")}`);
      const st = JSON.parse(m[1]!) as { cmdUnlink: number; retUnlink: number; unlinksTimedOut: number };
      check(st.unlinksTimedOut >= 1, `the relay never answered an unlink at its deadline: ${m[1]}`);
      return `${r.workload}; relay: ${st.cmdUnlink} unlinks, ${st.unlinksTimedOut} answered at the deadline`;
    } finally {
      if (verbose === undefined) delete process.env.USBIP_QREXEC_VERBOSE;
      else process.env.USBIP_QREXEC_VERBOSE = verbose;
      w.remove();
    }
  },
};
