/**
 * Policy against the real kernel: a frontend relay whose policy denies mass storage refuses the
 * gadget disk's configuration before SET_CONFIGURATION — no disk appears on the importing side,
 * the import ends with status 2 naming the interface and the rule, the port is free, and the
 * device is back on its driver on the exporting side.
 */
import { writeFileSync, readdirSync, realpathSync } from "node:fs";
import type { Scenario } from "./scenarios.js";
import { check, sleep, waitFor } from "./lib.js";
import { CLI, cli, vhciPorts } from "./flows.js";
import { checkGadgetsGone, driverOf, interfaceDriver, makeImage, massStorage } from "./gadget.js";

export const policyDeniesStorage: Scenario = {
  name: "policy: 'deny mass-storage' refuses the gadget disk's configuration (no disk appears, exit 2, port free)",
  async run() {
    const img = "/run/tmp/disk-policy.img";
    makeImage(img, 4);
    const g = await massStorage("policy", "dummy_udc.0", img);
    writeFileSync("/run/tmp/policy-deny", "# no storage here\ndeny mass-storage\n");
    try {
      const flow = cli(["qrexec-sim", "--", process.execPath, CLI, "import", "--mode", "relay", "--policy", "/run/tmp/policy-deny", "/run/tmp/state-policy", "--", process.execPath, CLI, "export", g.busid]);
      const r = await Promise.race([flow.exited, sleep(60_000).then(() => undefined)]);
      check(r !== undefined, `the flow did not end: ${flow.stderr()}`);
      check(r!.code === 2, `exit ${r!.code}: ${flow.stderr().trim()}`);
      check(/policy refuses interface 0 \(class 08\/06\/50\) by rule "deny mass-storage"/.test(flow.stderr()), `unexpected: ${flow.stderr().trim()}`);
      await waitFor("vhci ports free", () => vhciPorts().every((p) => p.status === 4), 15_000);
      const vhciDisks = readdirSync("/sys/block").filter((d) => d.startsWith("sd") && realpathSync(`/sys/block/${d}`).includes("vhci_hcd"));
      check(vhciDisks.length === 0, `a disk appeared on the importing side: ${vhciDisks.join(", ")}`);
      await waitFor(`${g.busid} back on its driver`, () => driverOf(g.busid) === "usb" && interfaceDriver(g.busid) === "usb-storage", 20_000);
    } finally {
      g.remove();
    }
    checkGadgetsGone();
    await sleep(2000);
  },
};
