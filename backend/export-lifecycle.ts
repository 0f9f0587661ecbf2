/**
 * The lifecycle every export shares, whatever carries the URBs: resolve and validate the device,
 * bind it to usbip-host, reset it if asked (reset on attach), allow it in usbguard, publish the
 * QubesDB state, run the mode's body, and on every exit path give the device back exactly once
 * (disconnect, unbind, forget, reset, reprobe), remove the QubesDB keys and the pid file.
 */
import { realpathSync } from "node:fs";
import { isSpeedString, type SpeedString } from "../protocol/speed.js";
import { GlueError, GlueErrorCode } from "../kernel-glue/errors.js";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { SdevStatus, UsbipHost } from "../kernel-glue/usbip-host.js";
import { checkExportable, describeDevice, resolveDevice, type UsbDeviceInfo } from "../kernel-glue/usb-devices.js";
import { ensureModule, resetDevice } from "../kernel-glue/system.js";
import { giveBack } from "../kernel-glue/give-back.js";
import { guardExport } from "../kernel-glue/orphan-guard.js";
import { terminationSignal, type TerminationSignal } from "../qrexec/agent.js";
import type { Logger } from "../shared/log.js";
import { removeExportPid, runningExports, writeExportPid } from "../shared/rundir.js";
import { publishExport, remoteDomain, unpublishExport, usbguardAllow, wantsResetOnAttach } from "./qubes-integration.js";

export interface ExportContext {
  sysfs: Sysfs;
  busid: string;
  devid: number;
  speed: SpeedString;
  log: Logger;
  /** resolves on SIGTERM / SIGINT / SIGHUP */
  signal: Promise<NodeJS.Signals>;
  /** call once the device is handed over: publishes the QubesDB state */
  exported(): Promise<void>;
}

export interface ExportOptions {
  device: string;
  log: Logger;
  sysfs?: Sysfs;
  /** checks to make before anything is touched (e.g. fd 0 is a socket) */
  precheck?: () => void;
  /** the caller's termination signal (serve: one for the server); one is made otherwise */
  signal?: TerminationSignal;
  /** the mode's part: hand the device over and resolve with why the connection ended */
  body: (ctx: ExportContext) => Promise<string>;
}

/** What every export holds from its preparation to its end, whatever serves the device. */
export interface PreparedExport {
  sysfs: Sysfs;
  busid: string;
  info: UsbDeviceInfo & { speed: SpeedString };
  signal: TerminationSignal;
  /** the device is ours now: write the pid file ('detach --busid' and the orphan check read it) */
  started(): void;
  /** on every exit path, once: the pid file, the orphan guard, our signal handlers */
  release(): void;
}

/**
 * The first half of every export (kernel, relay, userspace; export and serve): resolve the
 * device, check it can be exported and is nobody else's, arm the orphan guard (a kill -9 still
 * gives the device back), take the termination signals. Nothing of the device is touched yet.
 */
export function prepareExport(o: { device: string; sysfs?: Sysfs; precheck?: () => void; signal?: TerminationSignal; userspace?: boolean }): PreparedExport {
  const sysfs = o.sysfs ?? new Sysfs();
  const busid = resolveDevice(sysfs, o.device);
  const info = describeDevice(sysfs, busid);
  checkExportable(info, { userspace: o.userspace });
  const speed = info.speed;
  if (!isSpeedString(speed)) throw new GlueError(GlueErrorCode.BAD_DEVICE, `${busid}: unsupported speed "${speed}"`);
  o.precheck?.();
  checkNotExported(sysfs, busid); // before anything is touched: the device is someone else's (usbip-host not loaded yet: nothing can be bound to it)
  const guard = guardExport(busid);
  const signal = o.signal ?? terminationSignal();
  let released = false;
  let pid = false;
  return {
    sysfs,
    busid,
    info: { ...info, speed },
    signal,
    started() {
      writeExportPid(busid);
      pid = true;
    },
    release() {
      if (released) return;
      released = true;
      if (pid) removeExportPid(busid);
      guard.disarm();
      if (o.signal === undefined) signal.dispose();
    },
  };
}

/** An export through usbip-host (kernel and relay mode, serve's kernel mode): bind, run the mode's body, give back. */
export async function runExport(opts: ExportOptions): Promise<number> {
  const prep = prepareExport(opts);
  try {
    return await bindAndServe(prep, opts);
  } finally {
    prep.release();
  }
}

async function bindAndServe(prep: PreparedExport, opts: ExportOptions): Promise<number> {
  const { sysfs, busid, info, signal } = prep;
  const log = opts.log;
  await ensureModule(sysfs, "usbip-host");
  const host = new UsbipHost(sysfs);
  const original = host.bind(busid);
  log.info(`${busid} bound to usbip-host (was: ${original ?? "no driver"})`);
  let cleaned = false;
  let published = false;
  const cleanup = async (why: string) => {
    if (cleaned) return;
    cleaned = true;
    if (!sysfs.exists(`bus/usb/devices/${busid}`)) {
      log.warn(`${busid} is gone (unplugged): the export ends, nothing to give back`);
    } else {
      log.info(`connection ended (${why}); giving ${busid} back`);
      for (const p of await giveBack(sysfs, busid)) log.warn(p);
    }
    if (published) await unpublishExport(busid);
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
    prep.started();
    const why = await opts.body({
      sysfs,
      busid,
      devid: now.devid,
      speed: info.speed,
      log,
      signal: signal.promise,
      async exported() {
        log.info(`${busid} exported as devid ${now.devid} speed ${info.speed}`);
        await publishExport(busid, remoteDomain(), process.pid);
        published = true;
      },
    });
    await cleanup(why);
    return 0;
  } finally {
    await cleanup("error");
  }
}

/**
 * Refuse a device another export is serving (any mode): its pid file names a live process, or
 * usbip-host has it in use (an export by other tools, e.g. usbipd). Touching it would cut the
 * other export's connection; so the error names who has it and how to end that.
 */
export function checkNotExported(sysfs: Sysfs, busid: string): void {
  const pid = runningExports().get(busid);
  if (pid !== undefined && pid !== process.pid) throw new GlueError(GlueErrorCode.ALREADY_EXPORTED, `${busid} is already exported (by process ${pid}): end that first ('usbip-qrexec detach --busid ${busid}')`);
  const host = new UsbipHost(sysfs);
  if (host.present() && host.driver(busid) === "usbip-host" && host.status(busid) === SdevStatus.USED) throw new GlueError(GlueErrorCode.ALREADY_EXPORTED, `${busid} is already exported: usbip-host has it in use (by another tool?); 'usbip-qrexec detach --busid ${busid}' gives it back`);
}

/** The udev devpath (/devices/…) of a device, as `udevadm info --path` takes it. */
function devpathOf(sysfs: Sysfs, busid: string): string {
  try {
    return realpathSync(sysfs.path(`bus/usb/devices/${busid}`)).slice(realpathSync(sysfs.root).length);
  } catch {
    return `/bus/usb/devices/${busid}`;
  }
}
