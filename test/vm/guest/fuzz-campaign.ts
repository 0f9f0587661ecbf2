/**
 * The kernel fuzzing campaign's VM half (optional: runs only when selected by name, from
 * fuzz/kernel-campaign.ts, `npm run fuzz:kernel`). Runs the disk workload again and again through
 * the mutating relay — target vhci: our virtual disk exported, imported with `import --mode
 * relay --fuzz` (RET_* mutated toward vhci-hcd); target usbip-host: a gadget disk exported with
 * `export --mode relay --fuzz` (CMD_* mutated toward usbip-host) and imported in kernel mode —
 * each run with the next seed, unvalidated unless BENCH_FUZZ_VALIDATE=1, and watches dmesg for
 * what a kernel says when it is hurt: BUG, Oops, general protection, WARNING, hung tasks, and
 * usbip's own complaints. A run whose kernel complained is a finding: its seed, mutation log,
 * dmesg excerpt and stderr go to findings/seed-S/ in the results share; it is replayed from its
 * log (--fuzz-replay) to confirm, and the log is shrunk (delta debugging over its lines) to the
 * smallest part that still makes the kernel complain. Parameters (BENCH_* env, passed through
 * by the VM runner): TARGET, SECONDS, SEED, RATE, FIELDS, VALIDATE, SHRINK_TRIES.
 * Result: `N messages mutated, K kernel errors, F findings` as the TAP note, and a bench-json line.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Scenario } from "./scenarios.js";
import { driverOf, interfaceDriver, makeImage, massStorage, type Gadget } from "./gadget.js";
import { check, diskOf, dmesgMark, dmesgSince, modprobe, sh, sleep, waitFor } from "./lib.js";
import { cli, CLI, kernelFlow, ourProcesses, vhciPorts } from "./flows.js";

/** What a kernel says when a mutation hurt it (dmesg lines). */
export const KERNEL_COMPLAINTS = /\bBUG\b|Oops|general protection|WARNING:|hung_task|blocked for more than|cannot find a urb|recv xbuf|recv iso|invalid num packets|unknown pdu|malicious|submit_urb error|recv invalid request|stub_rx|Call Trace/i;

interface RunResult {
  mutations: string[];
  complaints: string[];
  stderr: string;
}

const env = (k: string, d: string) => process.env[`BENCH_FUZZ_${k}`] ?? d;

/** One workload run through the mutating relay; `fuzz` is ["--fuzz", SPEC] or ["--fuzz-replay", FILE]. */
async function runOnce(target: "vhci" | "usbip-host", fuzz: string[], validate: boolean, gadget: Gadget | undefined, img: string): Promise<RunResult> {
  const since = dmesgMark();
  const statefile = "/run/tmp/state-fuzz-campaign";
  const noValidate = validate ? [] : ["--no-validate"];
  const flow =
    target === "vhci"
      ? cli(["qrexec-sim", "--", process.execPath, CLI, "import", statefile, "--mode", "relay", ...fuzz, ...noValidate, "--", process.execPath, CLI, "export", "--virtual", `mass-storage:${img}`])
      : kernelFlow(gadget!.busid, statefile, { exportArgs: ["--mode", "relay", ...fuzz, ...noValidate] });
  // the workload: wait for the disk (if it ever comes), read it, then let go
  const disk = await waitFor("the imported disk", () => {
    if (flow.child.exitCode !== null) return "gone";
    const p = vhciPorts().find((x) => x.status === 6 && x.local !== "0-0");
    return p ? diskOf(p.local) : undefined;
  }, 30_000).catch(() => undefined);
  if (disk !== undefined && disk !== "gone") sh("sh", ["-c", `timeout 20 dd if=${disk} of=/dev/null bs=64k iflag=direct 2>/dev/null; true`], { allowFail: true, timeoutMs: 30_000 });
  if (flow.child.exitCode === null) {
    await cli(["detach", "--statefile", statefile]).exited;
    const r = await Promise.race([flow.exited, sleep(20_000).then(() => undefined)]);
    if (r === undefined) flow.child.kill("SIGKILL");
  }
  await Promise.race([flow.exited, sleep(10_000)]);
  // leave nothing for the next run: free ports, no process, the gadget back on its driver
  await waitFor("vhci ports free", () => vhciPorts().every((p) => p.status === 4), 30_000).catch(() => {
    for (const p of vhciPorts().filter((x) => x.status !== 4)) sh("sh", ["-c", `echo ${p.port} > /sys/devices/platform/vhci_hcd.0/detach`], { allowFail: true });
  });
  await waitFor("no process of ours left", () => ourProcesses().length === 0, 20_000).catch(() => {
    for (const p of ourProcesses()) sh("kill", ["-9", p.split(" ")[0]!], { allowFail: true });
  });
  if (gadget) await waitFor(`${gadget.busid} back on usb-storage`, () => driverOf(gadget.busid) === "usb" && interfaceDriver(gadget.busid) === "usb-storage", 30_000).catch(() => {});
  const stderr = flow.stderr();
  return { mutations: stderr.split("\n").filter((l) => /fuzz: message \d+ \(seqnum \d+\) \w+: .* -> /.test(l)), complaints: dmesgSince(since).filter((l) => KERNEL_COMPLAINTS.test(l)), stderr };
}

export interface CampaignOptions {
  target: "vhci" | "usbip-host";
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
  /** per finding: its directory, whether the replay confirmed it, and the log's length before and after shrinking */
  found: Array<{ dir: string; confirmed: boolean | "needs a new boot"; before: number; after: number }>;
}

export async function campaign(o: CampaignOptions): Promise<CampaignResult> {
  const { target, seconds, rate, fields, validate, shrinkTries } = o;
  const seed0 = o.seed;
  const found: CampaignResult["found"] = [];
  {
    modprobe("vhci-hcd", "usbip-host", "usb-storage", "sd_mod");
    const img = "/run/tmp/fuzz-campaign.img";
    makeImage(img, 4);
    const gadget = target === "usbip-host" ? await massStorage("fuzzcampaign", "dummy_udc.0", img) : undefined;
    const findingsDir = path.join(o.results, "findings");
    let mutated = 0;
    let kernelErrors = 0;
    let findings = 0;
    let runs = 0;
    const end = Date.now() + seconds * 1000;
    try {
      for (let seed = seed0; Date.now() < end; seed++) {
        const spec = `${seed},rate=${rate}${fields ? `,fields=${fields}` : ""}`;
        const r = await runOnce(target, ["--fuzz", spec], validate, gadget, img);
        runs++;
        mutated += r.mutations.length;
        kernelErrors += r.complaints.length;
        console.log(`# fuzz: run ${runs} (seed ${seed}): ${r.mutations.length} mutated, ${r.complaints.length} kernel errors; so far ${mutated} mutated, ${kernelErrors} kernel errors, ${findings} findings`);
        if (r.complaints.length === 0 || r.mutations.length === 0) continue;
        findings++;
        const dir = path.join(findingsDir, `seed-${seed}`);
        mkdirSync(dir, { recursive: true });
        const log = path.join(dir, "mutations.log");
        writeFileSync(log, r.mutations.join("\n") + "\n");
        writeFileSync(path.join(dir, "dmesg.txt"), r.complaints.join("\n") + "\n");
        writeFileSync(path.join(dir, "stderr.txt"), r.stderr);
        if (r.complaints.some((l) => /\bBUG\b|Oops|general protection|Call Trace/.test(l))) {
          // the kernel is hurt for good in this boot: replaying here proves nothing; a new boot does
          writeFileSync(path.join(dir, "summary.json"), JSON.stringify({ target, seed, spec, validate, mutations: r.mutations.length, confirmed: "needs a new boot (the kernel oopsed)", firstComplaint: r.complaints[0] }, null, 2) + "\n");
          console.log(`# fuzz: finding seed ${seed}: the kernel oopsed (${r.complaints[0]?.slice(0, 100)}); the campaign stops (replay it in a new boot with --fuzz-replay)`);
          found.push({ dir, confirmed: "needs a new boot", before: r.mutations.length, after: r.mutations.length });
          break;
        }
        // replay the whole log: does the kernel complain again?
        const again = await runOnce(target, ["--fuzz-replay", log], validate, gadget, img);
        const confirmed = again.complaints.length > 0;
        // shrink: drop chunks of the log while the kernel still complains (ddmin, bounded)
        let keep = r.mutations;
        let tries = 0;
        for (let chunk = Math.ceil(keep.length / 2); confirmed && chunk >= 1 && tries < shrinkTries; chunk = chunk === 1 ? 0 : Math.ceil(chunk / 2)) {
          for (let at = 0; at < keep.length && tries < shrinkTries && keep.length > 1; ) {
            const candidate = [...keep.slice(0, at), ...keep.slice(at + chunk)];
            const file = path.join(dir, "candidate.log");
            writeFileSync(file, candidate.join("\n") + "\n");
            tries++;
            if ((await runOnce(target, ["--fuzz-replay", file], validate, gadget, img)).complaints.length > 0) keep = candidate;
            else at += chunk;
          }
        }
        writeFileSync(path.join(dir, "shrunk.log"), keep.join("\n") + "\n");
        writeFileSync(path.join(dir, "summary.json"), JSON.stringify({ target, seed, spec, validate, mutations: r.mutations.length, confirmed, shrunkTo: keep.length, shrinkTries: tries, firstComplaint: r.complaints[0] }, null, 2) + "\n");
        console.log(`# fuzz: finding seed ${seed}: ${r.complaints[0]?.slice(0, 100)}; replay ${confirmed ? "confirms" : "does not confirm"}; shrunk ${r.mutations.length} -> ${keep.length} mutations in ${tries} tries`);
        found.push({ dir, confirmed, before: r.mutations.length, after: keep.length });
      }
    } finally {
      gadget?.remove();
    }
    return { runs, mutated, kernelErrors, findings, found };
  }
}

const summary = (r: CampaignResult, o: CampaignOptions) => `${r.mutated} messages mutated, ${r.kernelErrors} kernel errors, ${r.findings} findings (${r.runs} runs, target ${o.target}${o.validate ? ", validated" : ""})`;

/** `npm run fuzz:kernel`'s guest half: the campaign as the BENCH_FUZZ_* environment says. */
export const fuzzCampaign: Scenario = {
  name: "fuzz campaign: the disk workload through the mutating relay, seed after seed, dmesg watched; findings saved, replayed and shrunk",
  optional: true,
  async run() {
    const target = env("TARGET", "vhci");
    check(target === "vhci" || target === "usbip-host", `BENCH_FUZZ_TARGET must be vhci or usbip-host, not ${target}`);
    const o: CampaignOptions = { target, seconds: Number(env("SECONDS", "60")), seed: Number(env("SEED", "1")), rate: env("RATE", "0.05"), fields: env("FIELDS", ""), validate: env("VALIDATE", "0") === "1", shrinkTries: Number(env("SHRINK_TRIES", "12")), results: path.dirname(process.env.VM_RESULTS_TAP ?? "/run/results/results.tap") };
    const r = await campaign(o);
    const line = `# bench-json ${JSON.stringify({ target, validate: o.validate, runs: r.runs, mutated: r.mutated, kernelErrors: r.kernelErrors, findings: r.findings })}\n`;
    if (process.env.VM_RESULTS_TAP) appendFileSync(process.env.VM_RESULTS_TAP, line);
    return summary(r, o);
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
    const planted = await campaign({ target: "vhci", seconds: 1, seed: 3, rate: "1", fields: "start_frame+seqnum", validate: false, shrinkTries: 10, results });
    check(planted.mutated > 0, "no mutation made");
    check(planted.findings >= 1 && planted.found.length >= 1, `the planted finding was not found: ${summary(planted, { target: "vhci" } as CampaignOptions)}`);
    const f = planted.found[0]!;
    for (const file of ["mutations.log", "dmesg.txt", "stderr.txt", "shrunk.log", "summary.json"]) check(existsSync(path.join(f.dir, file)), `${file} not saved in ${f.dir}`);
    check(/cannot find a urb of seqnum/.test(readFileSync(path.join(f.dir, "dmesg.txt"), "utf8")), "the finding's dmesg does not show vhci-hcd's complaint");
    check(f.confirmed === true, "the replay from the mutation log did not confirm the finding");
    check(f.before > 1 && f.after < f.before, `not shrunk: ${f.before} -> ${f.after}`);
    const host = await campaign({ target: "usbip-host", seconds: 20, seed: 1, rate: "0.05", fields: "transfer_flags+start_frame", validate: false, shrinkTries: 2, results });
    check(host.runs > 0 && host.mutated > 0, `the usbip-host campaign mutated nothing: ${summary(host, { target: "usbip-host" } as CampaignOptions)}`);
    return `vhci: ${summary(planted, { target: "vhci", validate: false } as CampaignOptions)}, shrunk ${f.before} -> ${f.after}; usbip-host: ${summary(host, { target: "usbip-host", validate: false } as CampaignOptions)}`;
  },
};
