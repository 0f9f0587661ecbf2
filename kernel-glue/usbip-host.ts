/**
 * usbip-host (the exporting side's stub driver), through sysfs:
 * /sys/bus/usb/drivers/usbip-host/{match_busid,bind,unbind,rebind} and, per device,
 * usbip_status (1 available, 2 used, 3 error) and usbip_sockfd (fd, or -1 to disconnect).
 * match_busid takes "add <busid>" / "del <busid>" with no trailing newline (a newline would
 * become part of the stored busid and the device would never match).
 */
import { GlueError, GlueErrorCode } from "./errors.js";
import { Sysfs, SysfsWriteError } from "./sysfs.js";

/** enum usbip_device_status, stub side. */
export const SdevStatus = { AVAILABLE: 1, USED: 2, ERROR: 3 } as const;

const DRV = "bus/usb/drivers/usbip-host";

export class UsbipHost {
  constructor(readonly sysfs: Sysfs = new Sysfs()) {}

  present(): boolean {
    return this.sysfs.exists(`${DRV}/match_busid`);
  }

  private dev(busid: string): string {
    return `bus/usb/devices/${busid}`;
  }

  /** The driver bound to the device itself (usb, usbip-host, …), if any. */
  driver(busid: string): string | undefined {
    return this.sysfs.linkName(`${this.dev(busid)}/driver`);
  }

  matchBusids(): string[] {
    return (this.sysfs.tryRead(`${DRV}/match_busid`) ?? "").split(/\s+/).filter(Boolean);
  }

  /**
   * Bind the device to usbip-host: unbind its current driver, add it to match_busid, bind.
   * Returns the driver it had before (undefined if none, "usbip-host" if it already was bound).
   */
  bind(busid: string): string | undefined {
    if (!this.present()) throw new GlueError(GlueErrorCode.NO_USBIP_HOST, "usbip-host is not loaded (modprobe usbip-host)");
    const before = this.driver(busid);
    if (before === "usbip-host") return before;
    if (before !== undefined) this.sysfs.write(`bus/usb/drivers/${before}/unbind`, busid);
    this.sysfs.write(`${DRV}/match_busid`, `add ${busid}`);
    try {
      // right after an earlier session gave the device back, the stub may still refuse the busid
      // ("not in match_busid table... skip!", ENODEV; seen once in 100 VM cycles even after one
      // immediate retry): add it again and retry, a few times, a little later each time
      for (let attempt = 0; ; attempt++) {
        try {
          this.sysfs.write(`${DRV}/bind`, busid);
          break;
        } catch (e) {
          if (!(e instanceof SysfsWriteError && e.errno === "ENODEV") || attempt === 3) throw e;
          if (attempt > 0) sleepSync(200 * attempt);
          this.sysfs.write(`${DRV}/match_busid`, `add ${busid}`);
        }
      }
    } catch (e) {
      this.forget(busid);
      if (before !== undefined) this.reprobe(busid);
      throw e;
    }
    return before;
  }

  status(busid: string): number | undefined {
    const s = this.sysfs.tryRead(`${this.dev(busid)}/usbip_status`);
    return s === undefined ? undefined : Number.parseInt(s, 10);
  }

  /** Hand `fd` (in this process's fd table) to the stub; the kernel starts reading CMDs at once. */
  setSockfd(busid: string, fd: number): void {
    this.sysfs.write(`${this.dev(busid)}/usbip_sockfd`, String(fd));
  }

  /** Disconnect (usbip_sockfd -1) if the device is in use; false if there was nothing to do. */
  disconnect(busid: string): boolean {
    if (this.status(busid) !== SdevStatus.USED) return false;
    try {
      this.setSockfd(busid, -1);
      return true;
    } catch (e) {
      // EINVAL: the connection ended on its own meanwhile
      if (e instanceof SysfsWriteError && e.errno === "EINVAL") return false;
      throw e;
    }
  }

  /**
   * Wait until the stub has finished tearing a connection down: its event handler shuts the
   * socket down, resets the device, and only then sets usbip_status back to AVAILABLE (or ERROR).
   * Unbinding before that frees the stub device under the running handler — a use-after-free
   * in usbip_core's event_handler (general protection fault, seen in the VM with two exports
   * torn down at once). Returns false on timeout.
   */
  async waitSettled(busid: string, timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (this.status(busid) === SdevStatus.USED) {
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    // the handler sets the status as its last step; let it return before the device goes away
    await new Promise((r) => setTimeout(r, 100));
    return true;
  }

  /** Remove the busid from match_busid (ENODEV: it was not there). */
  forget(busid: string): void {
    try {
      this.sysfs.write(`${DRV}/match_busid`, `del ${busid}`);
    } catch (e) {
      if (!(e instanceof SysfsWriteError && e.errno === "ENODEV")) throw e;
    }
  }

  /** Unbind from usbip-host (if bound) and forget the busid, so no later probe binds it again. */
  unbind(busid: string): void {
    if (this.driver(busid) === "usbip-host") this.sysfs.write(`${DRV}/unbind`, busid);
    this.forget(busid);
  }

  /** Let the driver core find a driver again (the original one takes the device back). */
  reprobe(busid: string): void {
    this.sysfs.write("bus/usb/drivers_probe", busid);
  }
}

/** Block for `ms` (bind is synchronous and runs before anything else of the export). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
