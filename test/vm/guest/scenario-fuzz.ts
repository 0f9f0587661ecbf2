/**
 * The mutating relay against the real vhci-hcd (`import --mode relay --fuzz`), with our virtual
 * disk as the backend:
 *  - fuzz, then validate: RETs mutated at a high rate; every mutation is logged, the relay stops
 *    the first one that breaks a rule (exit 2, rule, seqnum and offset named) and vhci-hcd logs
 *    nothing of it; the port is freed;
 *  - the same on the backend side (`export --mode relay --fuzz`): the frontend's CMDs mutated on
 *    their way to usbip-host, stopped by the backend relay, the gadget given back;
 *  - --no-validate, the planted finding: every RET's seqnum changed, which vhci-hcd is known to
 *    report ("cannot find a urb of seqnum", then it drops the connection): the mutation reaches
 *    the kernel, the kernel says so, and the import still ends with the port freed.
 */
import { existsSync } from "node:fs";
import type { Scenario } from "./scenarios.js";
import { driverOf, interfaceDriver, makeImage, massStorage } from "./gadget.js";
import { check, diskOf, dmesgMark, dmesgSince, ended, modprobe, waitFor } from "./lib.js";
import { cli, CLI, kernelFlow, ourProcesses, vhciPorts } from "./flows.js";

// what vhci-hcd prints when a bad RET reaches it (vhci_rx.c)
const VHCI_ERRORS = /cannot find a urb|recv xbuf|recv iso|invalid num packets|malicious|unknown pdu/i;

async function fuzzRun(spec: string, validate: boolean): Promise<{ stderr: string; code: number | null; kernel: string[] }> {
  modprobe("vhci-hcd", "usb-storage", "sd_mod");
  const img = "/run/tmp/fuzz-disk.img";
  makeImage(img, 4);
  const statefile = `/run/tmp/state-fuzz-${validate ? "v" : "nv"}`;
  const since = dmesgMark();
  const flow = cli(["qrexec-sim", "--", process.execPath, CLI, "import", statefile, "--mode", "relay", "--fuzz", spec, ...(validate ? [] : ["--no-validate"]), "--", process.execPath, CLI, "export", "--virtual", `mass-storage:${img}`]);
  const code = await ended(flow, 90_000, `import --fuzz ${spec}`);
  await waitFor("vhci ports free", () => vhciPorts().every((p) => p.status === 4), 30_000);
  check(!existsSync(statefile), "statefile left behind");
  await waitFor("no process of ours left", () => ourProcesses().length === 0, 20_000).catch(() => check(false, `processes left: ${ourProcesses().join(" | ")}`));
  const kernel = dmesgSince(since);
  check(!kernel.some((l) => /BUG:|Oops|general protection/.test(l)), `the kernel oopsed: ${kernel.slice(-8).join(" | ")}`);
  return { stderr: flow.stderr(), code, kernel };
}

/** The backend relay with --fuzz in front of usbip-host, a gadget disk behind it. */
async function fuzzBackend(spec: string): Promise<string> {
  modprobe("usbip-host", "vhci-hcd");
  const img = "/run/tmp/fuzz-gadget.img";
  makeImage(img, 4);
  const g = await massStorage("fuzzdisk", "dummy_udc.0", img);
  try {
    await waitFor("the backend's own disk", () => diskOf(g.busid), 20_000);
    const since = dmesgMark();
    const statefile = "/run/tmp/state-fuzz-backend";
    const flow = kernelFlow(g.busid, statefile, { exportArgs: ["--mode", "relay", "--fuzz", spec] });
    await ended(flow, 90_000, `export --fuzz ${spec}`);
    const err = flow.stderr();
    const m = mutations(err);
    check(m.length > 0, `no mutation logged: ${err.trim()}`);
    const rule = err.split("\n").find((l) => /export: refused a message from the frontend: USBIP_ERR_\w+ at byte \d+ \(seqnum \d+\)/.test(l));
    check(rule !== undefined, `the backend relay named no rule: ${err.trim().split("\n").slice(-5).join(" | ")}`);
    await waitFor(`${g.busid} back on usb-storage`, () => driverOf(g.busid) === "usb" && interfaceDriver(g.busid) === "usb-storage", 30_000);
    await waitFor("vhci ports free", () => vhciPorts().every((p) => p.status === 4), 30_000);
    const bad = dmesgSince(since).filter((l) => USBIP_HOST_ERRORS.test(l) || /BUG:|Oops|general protection/.test(l));
    check(bad.length === 0, `usbip-host saw a mutation the relay let through: ${bad.join(" | ")}`);
    return `${m.length} mutations logged, stopped: ${/USBIP_ERR_\w+/.exec(rule)![0]}`;
  } finally {
    g.remove();
  }
}

// what usbip-host prints when a bad CMD reaches it (stub_rx.c)
const USBIP_HOST_ERRORS = /recv invalid request|submit_urb error|stub_rx|malicious|invalid seqnum|unknown pdu/i;

const mutations = (stderr: string) => stderr.split("\n").filter((l) => /fuzz: message \d+ \(seqnum \d+\) \w+: .* -> /.test(l));

export const fuzzScenarios: Scenario[] = [
  {
    name: "fuzz, then validate, backend: the backend relay mutates the frontend's CMDs to a gadget disk (--fuzz 5,rate=0.3), logs each mutation, and stops the first that breaks a rule before usbip-host sees it (exit 2, rule named), the device given back",
    run: () => fuzzBackend("5,rate=0.3,fields=ep+direction+actual_length+number_of_packets+seqnum"),
  },
  {
    name: "fuzz, then validate: the frontend relay mutates the virtual disk's RETs (--fuzz 7,rate=0.3), logs each mutation, and stops the first that breaks a rule before vhci-hcd sees it (exit 2, rule named), the port freed",
    async run() {
      const r = await fuzzRun("7,rate=0.3,fields=status+actual_length+number_of_packets+error_count+seqnum+iso+truncate+duplicate", true);
      const m = mutations(r.stderr);
      check(m.length > 0, `no mutation logged: ${r.stderr.trim()}`);
      check(r.code === 2, `exit ${r.code}, expected 2 (the relay's refusal): ${r.stderr.trim().split("\n").slice(-4).join(" | ")}`);
      const rule = r.stderr.split("\n").find((l) => /refused a message from the backend: USBIP_ERR_\w+ at byte \d+ \(seqnum \d+\)/.test(l));
      check(rule !== undefined, `no rule named: ${r.stderr.trim().split("\n").slice(-4).join(" | ")}`);
      const bad = r.kernel.filter((l) => VHCI_ERRORS.test(l));
      check(bad.length === 0, `vhci-hcd saw a mutation the relay let through: ${bad.join(" | ")}`);
      return `${m.length} mutations logged, stopped: ${/USBIP_ERR_\w+/.exec(rule)![0]}`;
    },
  },
  {
    name: "fuzz without validation (--no-validate), the planted finding: every RET's seqnum mutated reaches vhci-hcd, which reports it (cannot find a urb of seqnum) and drops the link; the import ends, the port freed",
    async run() {
      const r = await fuzzRun("11,rate=1,fields=seqnum", false);
      check(mutations(r.stderr).length > 0, `no mutation logged: ${r.stderr.trim()}`);
      check(/none validated/.test(r.stderr), `the stage did not say it validated nothing: ${r.stderr.trim()}`);
      const seen = r.kernel.filter((l) => /cannot find a urb of seqnum/.test(l));
      check(seen.length > 0, `vhci-hcd did not report the mutated seqnum: ${r.kernel.slice(-6).join(" | ")}`);
      return `exit ${r.code}; vhci-hcd: ${seen[0]!.replace(/^\[[^\]]*\]\s*/, "").slice(0, 80)}`;
    },
  },
];
