/**
 * Diagnostic (run only when named: `node dist/test/vm/run.js direct`): usbtest's unlink cases
 * over the kernel's direct path — usbip-host and vhci-hcd on one socketpair, no userspace
 * relay in between — to tell a kernel race that relay timing exposes from a fault of ours.
 */
import path from "node:path";
import type { Scenario } from "./scenarios.js";
import { sourceSink, checkGadgetsGone } from "./gadget.js";
import { check, modprobe, start, tryRead, waitFor } from "./lib.js";
import { repo, vhciPorts } from "./flows.js";
import { runUsbtest, UNLINK_CASES } from "./scenario-kernel-usbtest.js";
import { UsbipHost } from "../../../kernel-glue/usbip-host.js";
import { Sysfs } from "../../../kernel-glue/sysfs.js";

export const directUnlink: Scenario = {
  name: "diagnostic: usbtest unlink cases 11, 12, 24 over the kernel's direct socketpair path",
  optional: true,
  async run() {
    modprobe("usbip-host", "vhci-hcd");
    const g = await sourceSink("direct", "dummy_udc.0");
    const host = new UsbipHost(new Sysfs());
    host.bind(g.busid);
    const devid = (Number(tryRead(`/sys/bus/usb/devices/${g.busid}/busnum`)) << 16) | Number(tryRead(`/sys/bus/usb/devices/${g.busid}/devnum`));
    const p = start("/usr/bin/python3", [path.join(repo, "test/vm/guest/direct-attach.py"), g.busid, "0", String(devid), "3"]);
    try {
      const local = await waitFor("vhci port 0", () => {
        const x = vhciPorts().find((q) => q.port === 0);
        return x && x.status === 6 && x.local !== "0-0" ? x.local : undefined;
      }, 30_000);
      const failures = await runUsbtest(local, UNLINK_CASES, 10);
      check(failures.length === 0, failures.join(", "));
    } finally {
      p.child.kill("SIGTERM");
      await p.exited;
      try {
        host.disconnect(g.busid);
        host.unbind(g.busid);
        host.reprobe(g.busid);
      } catch {
        /* best effort */
      }
      g.remove();
    }
    checkGadgetsGone();
  },
};
