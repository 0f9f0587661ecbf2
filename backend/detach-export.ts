/**
 * Detach on the exporting side: ask a running export to end (it gives its device back itself),
 * or give back what an export that died left behind — the device on usbip-host (disconnect,
 * unbind, reset, reprobe), or, after a userspace export, interfaces without their drivers.
 */
import { GlueCode, UsbipError } from "../protocol/errors.js";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { UsbipHost } from "../kernel-glue/usbip-host.js";
import { busids, describeDevice } from "../kernel-glue/usb-devices.js";
import { resetDevice } from "../kernel-glue/system.js";
import { giveBack } from "../kernel-glue/give-back.js";
import { alive, removeStaleExportPid, runningExports } from "../shared/rundir.js";

/** Ask a running export to end and wait for it (it gives its device back itself). */
export async function stopExport(busid: string, pid: number): Promise<void> {
  process.kill(pid, "SIGTERM");
  const end = Date.now() + 20_000;
  while (alive(pid)) {
    if (Date.now() > end) throw new UsbipError(GlueCode.TIMEOUT, `detach: the export of ${busid} (pid ${pid}) did not end within 20 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `detach --busid B`: end the running export of B, or give back what a killed one left on usbip-host. */
export async function detachBusid(busid: string): Promise<void> {
  const pid = runningExports().get(busid);
  if (pid !== undefined) {
    await stopExport(busid, pid);
    return;
  }
  const sysfs = new Sysfs();
  if (new UsbipHost(sysfs).driver(busid) !== "usbip-host") throw new UsbipError(GlueCode.NOT_ATTACHED, `detach: device ${busid} not found or not attached to any VM`);
  // no exporter left (it was killed): the seed's zombie-device fix
  const problems = await giveBack(sysfs, busid);
  if (problems.length > 0) throw new UsbipError(GlueCode.GIVE_BACK, `detach: ${busid}: ${problems.join("; ")}`);
}

/** `detach --all`: every export ended, every device still on usbip-host given back (before suspend). */
export async function detachAll(): Promise<void> {
  await Promise.all([...runningExports()].map(([busid, pid]) => stopExport(busid, pid)));
  const sysfs = new Sysfs();
  const host = new UsbipHost(sysfs);
  const problems: string[] = [];
  for (const busid of busids(sysfs)) {
    if (host.driver(busid) !== "usbip-host") continue;
    for (const p of await giveBack(sysfs, busid)) problems.push(`${busid}: ${p}`);
  }
  if (problems.length > 0) throw new UsbipError(GlueCode.GIVE_BACK, `detach --all: ${problems.join("; ")}`);
}

/**
 * The export with pid `pid` died without cleaning up: give its device back. Kernel and relay
 * modes leave it on usbip-host (the zombie-device fix as in detachBusid); userspace mode leaves
 * interfaces whose drivers libusb detached unbound (usbfs does not reprobe on close).
 */
export async function detachOrphanedExport(busid: string, pid: number, report: (line: string) => void): Promise<void> {
  removeStaleExportPid(busid, pid);
  // a new export of the same device may have started in the moment since the old one died: the
  // device is that export's now, and giving it back would pull it from under it
  const owner = runningExports().get(busid);
  if (owner !== undefined && owner !== pid) {
    report(`detach: ${busid} left alone: it is exported again (by process ${owner}) since its export (pid ${pid}) died`);
    return;
  }
  const sysfs = new Sysfs();
  if (!sysfs.exists(`bus/usb/devices/${busid}`)) return; // unplugged meanwhile
  const problems = new UsbipHost(sysfs).driver(busid) === "usbip-host" ? await giveBack(sysfs, busid) : await resetAndReprobe(sysfs, busid);
  if (problems.length > 0) throw new UsbipError(GlueCode.GIVE_BACK, `detach: ${busid}: ${problems.join("; ")}`);
  report(`detach: ${busid} given back after its export (pid ${pid}) died`);
}

/** After a userspace export: reset the device (it may be mid-transfer), then find drivers for its interfaces that have none. */
async function resetAndReprobe(sysfs: Sysfs, busid: string): Promise<string[]> {
  const problems: string[] = [];
  try {
    const d = describeDevice(sysfs, busid);
    await resetDevice(d.busnum, d.devnum);
  } catch (e) {
    problems.push(`reset: ${(e as Error).message}`);
  }
  for (const intf of sysfs.list(`bus/usb/devices/${busid}`).filter((n) => n.startsWith(`${busid}:`))) {
    if (sysfs.linkName(`bus/usb/devices/${busid}/${intf}/driver`) !== undefined) continue;
    try {
      sysfs.write("bus/usb/drivers_probe", intf);
    } catch (e) {
      problems.push(`reprobe ${intf}: ${(e as Error).message}`);
    }
  }
  return problems;
}
