/**
 * `export DEVICE` in kernel mode (the body of qubes.USB): bind the device to usbip-host, send
 * the handshake line on fd 0, hand fd 0 to the stub, stay until the connection ends, then give
 * the device back: disconnect if still used, unbind, forget the busid, reset, reprobe so the
 * original driver takes it again.
 *
 * The end is detected by the socket's hang-up (the peer closed, or the stub shut the socket
 * down on teardown / `usbip_sockfd -1`) or a termination signal — not by polling, and the
 * cleanup runs exactly once on every path.
 */
import { realpathSync, writeSync } from "node:fs";
import { formatHandshake } from "../protocol/handshake.js";
import { isSpeedString } from "../protocol/speed.js";
import { GlueError, GlueErrorCode } from "../kernel-glue/errors.js";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { SdevStatus, UsbipHost } from "../kernel-glue/usbip-host.js";
import { checkExportable, describeDevice, resolveDevice } from "../kernel-glue/usb-devices.js";
import { ensureModule, isSocket, resetDevice, watchHangup } from "../kernel-glue/system.js";
import { giveBack } from "../kernel-glue/give-back.js";
import { requestSingleSocket, terminationSignal } from "../qrexec/agent.js";
import type { Logger } from "../qrexec/log.js";
import { removeExportPid, writeExportPid } from "../qrexec/rundir.js";
import { publishExport, remoteDomain, unpublishExport, usbguardAllow, wantsResetOnAttach } from "./qubes-integration.js";

export interface ExportKernelOptions {
  device: string;
  log: Logger;
  sysfs?: Sysfs;
}

export async function exportKernel(opts: ExportKernelOptions): Promise<number> {
  const sysfs = opts.sysfs ?? new Sysfs();
  const log = opts.log;
  const busid = resolveDevice(sysfs, opts.device);
  const info = describeDevice(sysfs, busid);
  checkExportable(info);
  if (!isSpeedString(info.speed)) throw new GlueError(GlueErrorCode.BAD_DEVICE, `${busid}: unsupported speed "${info.speed}"`);
  if (!isSocket(0)) throw new GlueError(GlueErrorCode.NOT_A_SOCKET, "fd 0 is not a socket: kernel mode needs the qrexec link as one socket (run as the qubes.USB service, or under qrexec-sim --link socket)");
  await ensureModule(sysfs, "usbip-host");
  const host = new UsbipHost(sysfs);
  const signal = terminationSignal();

  requestSingleSocket();
  const original = host.bind(busid);
  log.info(`${busid} bound to usbip-host (was: ${original ?? "no driver"})`);
  let cleaned = false;
  let published = false;
  const cleanup = async (why: string) => {
    if (cleaned) return;
    cleaned = true;
    log.info(`connection ended (${why}); giving ${busid} back`);
    for (const p of await giveBack(sysfs, busid)) log.warn(p);
    if (published) await unpublishExport(busid);
    removeExportPid(busid);
  };

  try {
    const status = host.status(busid);
    if (status !== SdevStatus.AVAILABLE) throw new GlueError(GlueErrorCode.NOT_AVAILABLE, `${busid} is not available for export (usbip_status ${status ?? "missing"}${status === SdevStatus.USED ? ": already exported" : ""})`);
    if (await wantsResetOnAttach(devpathOf(sysfs, busid))) {
      log.info(`resetting ${busid} (reset on attach)`);
      const before = describeDevice(sysfs, busid);
      await resetDevice(before.busnum, before.devnum);
      const after = host.status(busid);
      if (after !== SdevStatus.AVAILABLE) throw new GlueError(GlueErrorCode.NOT_AVAILABLE, `${busid} is not available after its reset (usbip_status ${after ?? "missing"})`);
    }
    await usbguardAllow(busid);
    const now = describeDevice(sysfs, busid);
    writeExportPid(busid);
    writeSync(0, formatHandshake({ devid: now.devid, speed: info.speed }));
    host.setSockfd(busid, 0);
    log.info(`${busid} exported as devid ${now.devid} speed ${info.speed}`);
    await publishExport(busid, remoteDomain(), process.pid);
    published = true;
    const hangup = watchHangup(0);
    const why = await Promise.race([hangup.done.then(() => "link closed"), signal.promise.then((s) => `signal ${s}`)]);
    hangup.stop();
    await cleanup(why);
    return 0;
  } finally {
    await cleanup("error");
  }
}

/** The udev devpath (/devices/…) of a device, as `udevadm info --path` takes it. */
function devpathOf(sysfs: Sysfs, busid: string): string {
  try {
    return realpathSync(sysfs.path(`bus/usb/devices/${busid}`)).slice(realpathSync(sysfs.root).length);
  } catch {
    return `/bus/usb/devices/${busid}`;
  }
}
