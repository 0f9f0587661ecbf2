/**
 * The relay modes against the real kernel: the storage flow and usbtest through the frontend
 * relay (before vhci-hcd), the backend relay (before usbip-host), and both at once. With the
 * backend relay the unlink cases 11, 12 and 24 run too: its unlink hold keeps usbip-host's
 * unlink use-after-free (which crashes the kernel path behind any relaying link) from being hit.
 */
import type { Scenario } from "./scenarios.js";
import { storageFlow } from "./scenario-kernel-storage.js";
import { SAFE_USBTEST_CASES, USBTEST_CASES, usbtestFlow } from "./scenario-kernel-usbtest.js";

export const relayScenarios: Scenario[] = [
  { name: "frontend relay with a policy allowing mass storage only: gadget disk reads back, 1 MiB write lands, detach --statefile cleans up", run: () => storageFlow("frontend", { importMode: "relay", exportMode: "kernel", policy: "default deny\nallow mass-storage\n" }) },
  { name: "backend relay: gadget disk reads back, 1 MiB write lands, detach --busid cleans up", run: () => storageFlow("backend", { importMode: "kernel", exportMode: "relay" }) },
  { name: "both relays with --trace: gadget disk reads back, 1 MiB write lands, both pcapng traces decode in tshark, detach --statefile cleans up", run: () => storageFlow("frontend", { importMode: "relay", exportMode: "relay", trace: true }) },
  { name: "frontend relay: usbtest 0-10, 13, 14, 17-21, 27-29", run: () => usbtestFlow(SAFE_USBTEST_CASES, "relay", "kernel") },
  { name: "backend relay: usbtest 0-14, 17-21, 24, 27-29 (unlink cases included)", run: () => usbtestFlow(USBTEST_CASES, "kernel", "relay") },
  { name: "both relays: usbtest 0-14, 17-21, 24, 27-29 (unlink cases included)", run: () => usbtestFlow(USBTEST_CASES, "relay", "relay") },
];
