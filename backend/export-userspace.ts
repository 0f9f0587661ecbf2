/**
 * `export DEVICE --mode userspace`: no usbip-host. The device is opened with libusb
 * (backend/libusb-device.ts; its kernel drivers are detached and reattached afterwards), the
 * handshake line is sent, and device/urb-server.ts serves the frontend's URBs — every CMD_*
 * validated first, unlinks really cancelling transfers. Ends on link close, SIGTERM/SIGINT/SIGHUP
 * or 'detach --busid'; the interfaces are released and the drivers reattached on every path.
 */
import type { Logger } from "../shared/log.js";
import type { TerminationSignal } from "../qrexec/agent.js";
import type { Sysfs } from "../kernel-glue/sysfs.js";
import { LibusbDevice } from "./libusb-device.js";
import { serveOnLink } from "./serve-link.js";
import { prepareExport } from "./export-lifecycle.js";

export async function exportUserspace(o: { device: string; log: Logger; sysfs?: Sysfs }): Promise<number> {
  const prep = prepareExport({ ...o, userspace: true });
  try {
    const { busid, info } = prep;
    const device = LibusbDevice.open(info.busnum, info.devnum, busid, info.speed, o.log);
    prep.started();
    try {
      const gone = device.gone.then(() => o.log.warn(`${busid} is gone (unplugged): ending the export`));
      return await serveOnLink(device, o.log, Promise.race([prep.signal.promise, gone]), `${busid} from userspace (${device.via})`);
    } finally {
      await device.close(); // resets the device before its drivers get it back (see LibusbDevice.close)
    }
  } finally {
    prep.release();
  }
}

/**
 * serve --tcp, userspace mode: one imported connection; the device opened with libusb and
 * served by `serve` (the URB server on the socket); an unplug closes the connection.
 */
export async function serveUserspaceSession(o: { busid: string; sysfs: Sysfs; log: Logger; signal: TerminationSignal; sock: { destroy(): void }; serve: (device: LibusbDevice) => Promise<void> }): Promise<void> {
  const prep = prepareExport({ device: o.busid, sysfs: o.sysfs, signal: o.signal, userspace: true });
  try {
    const { busid, info } = prep;
    const device = LibusbDevice.open(info.busnum, info.devnum, busid, info.speed, o.log);
    prep.started();
    void device.gone.then(() => {
      o.log.warn(`${busid} is gone (unplugged): closing the connection`);
      o.sock.destroy();
    });
    try {
      await o.serve(device);
    } finally {
      await device.close();
    }
  } finally {
    prep.release();
  }
}
