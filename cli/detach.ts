/** `usbip-qrexec detach --statefile F` (frontend) and `detach --busid B` (backend). */
import { UsbipError, GlueCode } from "../protocol/errors.js";
import { readFileSync, rmSync } from "node:fs";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { Vhci, VdevStatus } from "../kernel-glue/vhci.js";
import { UsbipHost } from "../kernel-glue/usbip-host.js";
import { busids, describeDevice, isBusid } from "../kernel-glue/usb-devices.js";
import { resetDevice } from "../kernel-glue/system.js";
import { giveBack } from "../kernel-glue/give-back.js";
import { alive, readImportRecord, removeStaleExportPid, runningExports } from "../shared/rundir.js";
import { type Command, parse, printHelp } from "./command.js";
import { ExitCode, UsageError } from "./errors.js";

const help = `usage: usbip-qrexec detach --statefile STATEFILE
       usbip-qrexec detach -p PORT
       usbip-qrexec detach --busid BUSID
       usbip-qrexec detach --all

Frontend (the importing machine):
  --statefile F  detach the vhci-hcd port recorded in F by 'import' or
                 'connect', remove F and wait until the virtual device is gone
  -p, --port N   the same for vhci-hcd port N, as 'usbip detach -p N' (the
                 ports 'usbip-qrexec port' lists); the importer's statefile
                 goes too

Backend (the exporting machine):
  --busid B      stop the export of B (what "echo 2-1 | qubes.USBDetach"
                 does): a running 'export' is asked to end (SIGTERM) and gives
                 the device back itself; without one (it was killed) the device
                 is disconnected, unbound from usbip-host, reset and reprobed
                 here, so its original driver takes it back
  --all          stop every export of this machine the same way and give back
                 every device still bound to usbip-host (before suspend)

  --orphan-of PID  (with --statefile or --busid) what the orphan guard of
                 'import', 'connect' and 'export' runs when that process died
                 without cleaning up (kill -9): clean up whatever PID left (a
                 used port, the statefile, a device on usbip-host or without
                 its drivers, its pid file); silent when nothing is left
  -h, --help     this text

Waits at most 15 s for a port to be freed and 20 s for an export to end.`;

export const detachCommand: Command = {
  name: "detach",
  help,
  exitWhenDone: true,
  async run(argv) {
    const { values } = parse("detach", argv, { statefile: { type: "string" }, port: { type: "string", short: "p" }, busid: { type: "string" }, all: { type: "boolean", default: false }, "orphan-of": { type: "string" } });
    if (values.help) {
      await printHelp(help);
      return ExitCode.OK;
    }
    const given = [values.statefile !== undefined, values.port !== undefined, values.busid !== undefined, values.all === true].filter(Boolean).length;
    if (given !== 1) throw new UsageError("detach: give exactly one of --statefile STATEFILE, -p PORT, --busid BUSID or --all");
    if (values.port !== undefined) {
      if (values["orphan-of"] !== undefined) throw new UsageError("detach: --orphan-of goes with --statefile or --busid");
      if (!/^\d{1,5}$/.test(values.port)) throw new UsageError(`detach: -p takes a vhci-hcd port number, not "${values.port}"`);
      return detachPort(Number(values.port));
    }
    const orphanOf = values["orphan-of"];
    if (orphanOf !== undefined) {
      if (!/^[1-9]\d{0,9}$/.test(orphanOf)) throw new UsageError(`detach: --orphan-of takes a process id, not "${orphanOf}"`);
      if (values.all) throw new UsageError("detach: --orphan-of goes with --statefile or --busid, not --all");
      if (alive(Number(orphanOf))) throw new UsbipError(GlueCode.BUSY, `detach: process ${orphanOf} is still running (use detach without --orphan-of to stop it)`);
      return values.statefile !== undefined ? detachStatefile(values.statefile, true) : detachOrphanedExport(values.busid!, Number(orphanOf));
    }
    if (values.statefile !== undefined) return detachStatefile(values.statefile);
    if (values.all) return detachAll();
    return detachBusid(values.busid!);
  },
};

async function detachStatefile(file: string, orphaned = false): Promise<number> {
  let text: string;
  try {
    text = readFileSync(file, "utf8").trim();
  } catch {
    if (orphaned) return ExitCode.OK; // it died before attaching, or after its own cleanup
    throw new UsbipError(GlueCode.NOT_ATTACHED, `detach: ${file}: no such statefile (not attached)`);
  }
  const port = Number(text);
  if (!/^\d+$/.test(text)) throw new UsbipError(GlueCode.STATEFILE, `detach: ${file} does not hold a port number`);
  const vhci = new Vhci(new Sysfs());
  const p = vhci.port(port);
  if (p === undefined) throw new UsbipError(GlueCode.STATEFILE, `detach: vhci-hcd has no port ${port}`);
  if (p.status !== VdevStatus.NULL) vhci.detach(port);
  rmSync(file, { force: true });
  await vhci.waitDetached(port, p.localBusid, 15_000);
  return ExitCode.OK;
}

/** `detach -p PORT`: free the port; the import that holds it ends and removes its statefile. */
async function detachPort(port: number): Promise<number> {
  const vhci = new Vhci(new Sysfs());
  const p = vhci.port(port);
  if (p === undefined) throw new UsbipError(GlueCode.NOT_ATTACHED, `detach: vhci-hcd has no port ${port} (see 'usbip-qrexec port')`);
  if (p.status === VdevStatus.NULL) throw new UsbipError(GlueCode.NOT_ATTACHED, `detach: port ${port} is not in use`);
  const record = readImportRecord(port);
  vhci.detach(port);
  if (record !== undefined) rmSync(record.statefile, { force: true });
  await vhci.waitDetached(port, p.localBusid, 15_000);
  return ExitCode.OK;
}

/** Ask a running export to end and wait for it (it gives its device back itself). */
async function stopExport(busid: string, pid: number): Promise<void> {
  process.kill(pid, "SIGTERM");
  const end = Date.now() + 20_000;
  while (alive(pid)) {
    if (Date.now() > end) throw new UsbipError(GlueCode.TIMEOUT, `detach: the export of ${busid} (pid ${pid}) did not end within 20 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function detachBusid(busid: string): Promise<number> {
  if (!isBusid(busid)) throw new UsageError(`detach: invalid busid "${busid}"`);
  const pid = runningExports().get(busid);
  if (pid !== undefined) {
    await stopExport(busid, pid);
    return ExitCode.OK;
  }
  const sysfs = new Sysfs();
  if (new UsbipHost(sysfs).driver(busid) !== "usbip-host") throw new UsbipError(GlueCode.NOT_ATTACHED, `detach: device ${busid} not found or not attached to any VM`);
  // no exporter left (it was killed): the seed's zombie-device fix
  const problems = await giveBack(sysfs, busid);
  if (problems.length > 0) throw new UsbipError(GlueCode.GIVE_BACK, `detach: ${busid}: ${problems.join("; ")}`);
  return ExitCode.OK;
}

async function detachAll(): Promise<number> {
  await Promise.all([...runningExports()].map(([busid, pid]) => stopExport(busid, pid)));
  const sysfs = new Sysfs();
  const host = new UsbipHost(sysfs);
  const problems: string[] = [];
  for (const busid of busids(sysfs)) {
    if (host.driver(busid) !== "usbip-host") continue;
    for (const p of await giveBack(sysfs, busid)) problems.push(`${busid}: ${p}`);
  }
  if (problems.length > 0) throw new UsbipError(GlueCode.GIVE_BACK, `detach --all: ${problems.join("; ")}`);
  return ExitCode.OK;
}

/**
 * The export with pid `pid` died without cleaning up: give its device back. Kernel and relay
 * modes leave it on usbip-host (the zombie-device fix as in detachBusid); userspace mode leaves
 * interfaces whose drivers libusb detached unbound (usbfs does not reprobe on close).
 */
async function detachOrphanedExport(busid: string, pid: number): Promise<number> {
  if (!isBusid(busid)) throw new UsageError(`detach: invalid busid "${busid}"`);
  removeStaleExportPid(busid, pid);
  // a new export of the same device may have started in the moment since the old one died: the
  // device is that export's now, and giving it back would pull it from under it
  const owner = runningExports().get(busid);
  if (owner !== undefined && owner !== pid) {
    process.stderr.write(`usbip-qrexec: detach: ${busid} left alone: it is exported again (by process ${owner}) since its export (pid ${pid}) died\n`);
    return ExitCode.OK;
  }
  const sysfs = new Sysfs();
  if (!sysfs.exists(`bus/usb/devices/${busid}`)) return ExitCode.OK; // unplugged meanwhile
  const problems = new UsbipHost(sysfs).driver(busid) === "usbip-host" ? await giveBack(sysfs, busid) : await resetAndReprobe(sysfs, busid);
  if (problems.length > 0) throw new UsbipError(GlueCode.GIVE_BACK, `detach: ${busid}: ${problems.join("; ")}`);
  process.stderr.write(`usbip-qrexec: detach: ${busid} given back after its export (pid ${pid}) died\n`);
  return ExitCode.OK;
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
