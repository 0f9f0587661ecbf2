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

export const userspaceScenarios: Scenario[] = [
  { name: "userspace mode (libusb): gadget disk reads back, 1 MiB write lands, detach --busid gives it back to usb-storage", run: () => storageFlow("backend", { importMode: "kernel", exportMode: "userspace" }) },
  { name: "userspace mode (libusb): usbtest 0-14, 17-21, 24, 27-29 (unlink cases included)", run: () => usbtestFlow(USBTEST_CASES, "kernel", "userspace") },
];
