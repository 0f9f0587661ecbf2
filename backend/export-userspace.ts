/**
 * `export DEVICE --mode userspace`: no usbip-host. The device is opened with libusb
 * (backend/libusb-device.ts; its kernel drivers are detached and reattached afterwards), the
 * handshake line is sent, and device/urb-server.ts serves the frontend's URBs — every CMD_*
 * validated first, unlinks really cancelling transfers. Ends on link close, SIGTERM/SIGINT/SIGHUP
 * or 'detach --busid'; the interfaces are released and the drivers reattached on every path.
 */
import { UrbServer } from "../device/urb-server.js";
import { UsbipError } from "../protocol/errors.js";
import { formatHandshake } from "../protocol/handshake.js";
import { isSpeedString } from "../protocol/speed.js";
import { GlueError, GlueErrorCode } from "../kernel-glue/errors.js";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { checkExportable, describeDevice, resolveDevice } from "../kernel-glue/usb-devices.js";
import { terminationSignal } from "../qrexec/agent.js";
import { openLink } from "../qrexec/link.js";
import type { Logger } from "../qrexec/log.js";
import { removeExportPid, writeExportPid } from "../qrexec/rundir.js";
import { LibusbDevice } from "./libusb-device.js";

export async function exportUserspace(o: { device: string; log: Logger; sysfs?: Sysfs }): Promise<number> {
  const sysfs = o.sysfs ?? new Sysfs();
  const busid = resolveDevice(sysfs, o.device);
  const info = describeDevice(sysfs, busid);
  checkExportable(info);
  if (!isSpeedString(info.speed)) throw new GlueError(GlueErrorCode.BAD_DEVICE, `${busid}: unsupported speed "${info.speed}"`);
  const device = LibusbDevice.open(info.busnum, info.devnum, busid, info.speed, o.log);
  writeExportPid(busid);
  const signal = terminationSignal();
  try {
    const link = openLink();
    await new Promise<void>((resolve, reject) => link.output.write(formatHandshake({ devid: device.devid, speed: device.speed }), (e) => (e ? reject(e) : resolve())));
    o.log.info(`${busid} exported from userspace (libusb) as devid ${device.devid} speed ${device.speed}`);
    const server = new UrbServer(device, link.input, link.output);
    server.start();
    signal.promise.then(() => server.stop(), () => {});
    const r = await server.done;
    o.log.info(`session ended (${r.reason}): ${JSON.stringify(r.stats)}`);
    if (r.violation) {
      const e = r.violation;
      throw new UsbipError("USBIP_ERR_RELAY_VIOLATION", `refused a message from the frontend: ${e.code} at byte ${e.offset}${e.seqnum === undefined ? "" : ` (seqnum ${e.seqnum})`}: ${e.rule}`);
    }
    return 0;
  } finally {
    await device.close();
    removeExportPid(busid);
    signal.dispose();
  }
}
