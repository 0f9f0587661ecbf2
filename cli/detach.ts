/** `usbip-qrexec detach --statefile F` (frontend) and `detach --busid B` (backend). */
import { UsbipError, GlueCode } from "../protocol/errors.js";
import { isBusid } from "../kernel-glue/usb-devices.js";
import { alive } from "../shared/rundir.js";
import { detachPort, detachStatefile } from "../frontend/detach-import.js";
import { detachAll, detachBusid, detachOrphanedExport } from "../backend/detach-export.js";
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
      await detachPort(Number(values.port));
      return ExitCode.OK;
    }
    const orphanOf = values["orphan-of"];
    if (orphanOf !== undefined) {
      if (!/^[1-9]\d{0,9}$/.test(orphanOf)) throw new UsageError(`detach: --orphan-of takes a process id, not "${orphanOf}"`);
      if (values.all) throw new UsageError("detach: --orphan-of goes with --statefile or --busid, not --all");
      if (alive(Number(orphanOf))) throw new UsbipError(GlueCode.BUSY, `detach: process ${orphanOf} is still running (use detach without --orphan-of to stop it)`);
      if (values.statefile !== undefined) await detachStatefile(values.statefile, true);
      else await detachOrphanedExport(busidArg(values.busid!), Number(orphanOf), (line) => process.stderr.write(`usbip-qrexec: ${line}\n`));
      return ExitCode.OK;
    }
    if (values.statefile !== undefined) await detachStatefile(values.statefile);
    else if (values.all) await detachAll();
    else await detachBusid(busidArg(values.busid!));
    return ExitCode.OK;
  },
};

function busidArg(busid: string): string {
  if (!isBusid(busid)) throw new UsageError(`detach: invalid busid "${busid}"`);
  return busid;
}
