/** `usbip-qrexec detach --statefile F` (frontend) and `detach --busid B` (backend). */
import { readFileSync, rmSync } from "node:fs";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { Vhci } from "../kernel-glue/vhci.js";
import { UsbipHost } from "../kernel-glue/usbip-host.js";
import { describeDevice, isBusid } from "../kernel-glue/usb-devices.js";
import { resetDevice } from "../kernel-glue/system.js";
import { alive, runningExports } from "../qrexec/rundir.js";
import { type Command, parse, writeOut } from "./command.js";
import { CliError, ExitCode, UsageError } from "./errors.js";

const help = `usage: usbip-qrexec detach --statefile STATEFILE
       usbip-qrexec detach --busid BUSID

--statefile (frontend): detach the vhci-hcd port recorded in STATEFILE by 'import', remove
  the statefile and wait until the virtual device is gone.
--busid (backend, what "echo 2-1 | qubes.USBDetach" does): stop the export of BUSID. A running
  'export' is asked to end (SIGTERM) and gives the device back itself; without one (it was
  killed), the device is disconnected, unbound from usbip-host, reset and reprobed here, so
  its original driver takes it back.`;

export const detachCommand: Command = {
  name: "detach",
  summary: "end an import (--statefile) or an export (--busid)",
  help,
  async run(argv) {
    const { values } = parse("detach", argv, { statefile: { type: "string" }, busid: { type: "string" } });
    if (values.help) {
      await writeOut(help + "\n");
      return ExitCode.OK;
    }
    if ((values.statefile === undefined) === (values.busid === undefined)) throw new UsageError("detach: give exactly one of --statefile STATEFILE or --busid BUSID");
    if (values.statefile !== undefined) return detachStatefile(values.statefile);
    return detachBusid(values.busid!);
  },
};

async function detachStatefile(file: string): Promise<number> {
  let text: string;
  try {
    text = readFileSync(file, "utf8").trim();
  } catch {
    throw new CliError("USBIP_ERR_NOT_ATTACHED", `detach: ${file}: no such statefile (not attached)`);
  }
  const port = Number(text);
  if (!/^\d+$/.test(text)) throw new CliError("USBIP_ERR_STATEFILE", `detach: ${file} does not hold a port number`);
  const vhci = new Vhci(new Sysfs());
  const p = vhci.port(port);
  if (p === undefined) throw new CliError("USBIP_ERR_STATEFILE", `detach: vhci-hcd has no port ${port}`);
  if (p.status !== 4) vhci.detach(port);
  rmSync(file, { force: true });
  await vhci.waitDetached(port, p.localBusid, 15_000);
  return ExitCode.OK;
}

async function detachBusid(busid: string): Promise<number> {
  if (!isBusid(busid)) throw new UsageError(`detach: invalid busid "${busid}"`);
  const pid = runningExports().get(busid);
  if (pid !== undefined) {
    process.kill(pid, "SIGTERM");
    const end = Date.now() + 20_000;
    while (alive(pid)) {
      if (Date.now() > end) throw new CliError("USBIP_ERR_TIMEOUT", `detach: the export of ${busid} (pid ${pid}) did not end within 20 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return ExitCode.OK;
  }
  const sysfs = new Sysfs();
  const host = new UsbipHost(sysfs);
  if (host.driver(busid) !== "usbip-host") throw new CliError("USBIP_ERR_NOT_ATTACHED", `detach: device ${busid} not found or not attached to any VM`);
  // no exporter left (killed): the seed's zombie-device fix
  host.disconnect(busid);
  host.unbind(busid);
  const info = describeDevice(sysfs, busid);
  await resetDevice(info.busnum, info.devnum);
  host.reprobe(busid);
  return ExitCode.OK;
}
