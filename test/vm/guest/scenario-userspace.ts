/**
 * Issue 5's userspace-backend proofs: `export --mode userspace` (libusb through node-usb, no
 * usbip-host) against the real kernel's vhci-hcd: the gadget disk reads back byte-identical and
 * takes a write, and usbtest's cases — the unlink ones included, since unlinks cancel libusb
 * transfers here and never reach usbip-host's racy unlink path — pass. After detach the gadget
 * is back on its kernel driver (detached for the export, reattached on exit).
 */
import type { Scenario } from "./scenarios.js";
import { storageFlow } from "./scenario-kernel-storage.js";
import { USBTEST_CASES, usbtestFlow } from "./scenario-kernel-usbtest.js";
import { existsSync } from "node:fs";
import { checkGadgetsGone, makeImage, massStorage } from "./gadget.js";
import { check, diskOf, processesMatching, waitFor } from "./lib.js";
import { kernelFlow, vhciPorts, waitImported } from "./flows.js";

export const userspaceScenarios: Scenario[] = [
  { name: "userspace mode (usbfs): gadget disk reads back, 1 MiB write lands, detach --busid gives it back to usb-storage", run: () => storageFlow("backend", { importMode: "kernel", exportMode: "userspace" }) },
  { name: "userspace mode (usbfs): usbtest 0-14, 17-21, 24, 27-29 (unlink cases included)", run: () => usbtestFlow(USBTEST_CASES, "kernel", "userspace") },
  { name: "userspace mode: unplugging the device ends the export by itself and frees the frontend's port", run: unplugDuringExport },
];

/** Unplug while exported from userspace: the export ends by itself, the frontend's port is freed. */
async function unplugDuringExport(): Promise<void> {
  const img = "/run/tmp/unplug.img";
  makeImage(img, 8);
  const g = await massStorage("unplug", "dummy_udc.0", img);
  const statefile = "/run/tmp/state-unplug";
  let removed = false;
  try {
    const flow = kernelFlow(g.busid, statefile, { exportArgs: ["--mode", "userspace"] });
    const { local } = await waitImported(statefile, flow);
    await waitFor(`a disk on ${local}`, () => diskOf(local), 60_000);
    g.remove(); // the gadget leaves dummy_hcd: the backend's device is gone
    removed = true;
    const r = await Promise.race([flow.exited, new Promise<undefined>((res) => setTimeout(() => res(undefined), 60_000))]);
    check(r !== undefined, `the flow did not end within 60 s of the unplug: ${flow.stderr().trim()}`);
    check(/is gone \(unplugged\): ending the export/.test(flow.stderr()), `no unplug line from the export: ${flow.stderr().trim()}`);
    await waitFor("the vhci port to be free", () => vhciPorts().every((p) => p.status === 4), 30_000);
    check(!existsSync(statefile), "statefile left behind");
    check(processesMatching("usbip-qrexec.js").length === 0, `processes left: ${processesMatching("usbip-qrexec.js").join(" | ")}`);
  } finally {
    if (!removed) g.remove();
  }
  checkGadgetsGone();
}
