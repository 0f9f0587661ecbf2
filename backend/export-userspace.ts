/**
 * `export DEVICE --mode userspace`: no usbip-host. The device is opened with libusb
 * (backend/libusb-device.ts; its kernel drivers are detached and reattached afterwards), the
 * handshake line is sent, and device/urb-server.ts serves the frontend's URBs — every CMD_*
 * validated first, unlinks really cancelling transfers. Ends on link close, SIGTERM/SIGINT/SIGHUP
 * or 'detach --busid'; the interfaces are released and the drivers reattached on every path.
 */
import { isSpeedString } from "../protocol/speed.js";
import { GlueError, GlueErrorCode } from "../kernel-glue/errors.js";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { checkExportable, describeDevice, resolveDevice } from "../kernel-glue/usb-devices.js";
import { terminationSignal } from "../qrexec/agent.js";
import type { Logger } from "../shared/log.js";
import { removeExportPid, writeExportPid } from "../shared/rundir.js";
import { LibusbDevice } from "./libusb-device.js";
import { guardExport } from "../kernel-glue/orphan-guard.js";
import { checkNotExported } from "./export-lifecycle.js";
import { serveOnLink } from "./serve-link.js";

export async function exportUserspace(o: { device: string; log: Logger; sysfs?: Sysfs }): Promise<number> {
  const sysfs = o.sysfs ?? new Sysfs();
  const busid = resolveDevice(sysfs, o.device);
  const info = describeDevice(sysfs, busid);
  checkExportable(info);
  if (!isSpeedString(info.speed)) throw new GlueError(GlueErrorCode.BAD_DEVICE, `${busid}: unsupported speed "${info.speed}"`);
  checkNotExported(sysfs, busid);
  const guard = guardExport(busid);
  let device: LibusbDevice;
  try {
    device = LibusbDevice.open(info.busnum, info.devnum, busid, info.speed, o.log);
  } catch (e) {
    guard.disarm();
    throw e;
  }
  writeExportPid(busid);
  const signal = terminationSignal();
  try {
    const gone = device.gone.then(() => o.log.warn(`${busid} is gone (unplugged): ending the export`));
    return await serveOnLink(device, o.log, Promise.race([signal.promise, gone]), `${busid} from userspace (libusb)`);
  } finally {
    await device.close(); // resets the device before its drivers get it back (see LibusbDevice.close)
    removeExportPid(busid);
    signal.dispose();
    guard.disarm();
  }
}
