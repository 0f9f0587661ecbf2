/**
 * Give an exported device back to the machine that owns it: disconnect the link if still used
 * (usbip_sockfd -1), wait for usbip-host to finish its teardown (unbinding under its running
 * event handler is a use-after-free), unbind, reset it, and reprobe through usbip-host's
 * 'rebind' so the original driver takes it again and the stub's table entry is freed (the
 * seed's "zombie device" fix). Every step runs even if an
 * earlier one failed; the failures are returned.
 */
import type { Sysfs } from "./sysfs.js";
import { UsbipHost } from "./usbip-host.js";
import { describeDevice } from "./usb-devices.js";
import { resetDevice } from "./system.js";

export async function giveBack(sysfs: Sysfs, busid: string): Promise<string[]> {
  const host = new UsbipHost(sysfs);
  const problems: string[] = [];
  const step = async (what: string, f: () => unknown) => {
    try {
      await f();
    } catch (e) {
      problems.push(`${what}: ${(e as Error).message}`);
    }
  };
  await step("disconnect", () => host.disconnect(busid));
  await step("settle", async () => {
    if (!(await host.waitSettled(busid, 15_000))) throw new Error("usbip-host did not finish the teardown within 15 s");
  });
  let held = false;
  await step("unbind", () => (held = host.unbind(busid)));
  await step("reset", async () => {
    const d = describeDevice(sysfs, busid);
    await resetDevice(d.busnum, d.devnum);
  });
  // the stub held it: 'rebind' reprobes AND frees usbip-host's table entry (see UsbipHost.unbind)
  await step("reprobe", () => (held ? host.rebind(busid) : host.reprobe(busid)));
  return problems;
}
