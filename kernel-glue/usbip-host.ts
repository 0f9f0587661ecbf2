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
      // one write: the ENODEV refusals once retried here came from a wedged match_busid entry,
      // whose cause (a 'del' while the stub held the device) we no longer write
      this.sysfs.write(`${DRV}/bind`, busid);
    } catch (e) {
      // no 'del' here: another export may have bound the device meanwhile, and a 'del' while the
      // stub holds a device wedges its table entry (see unbind())
      if (before !== undefined) this.reprobe(busid);
      if (e instanceof SysfsWriteError && e.errno === "ENODEV" && this.matchBusids().includes(busid)) {
        throw new GlueError(GlueErrorCode.SYSFS, `usbip-host refuses ${busid} although it is in its match_busid table: the entry is wedged (a 'del' while the device was bound, by some other tool); reload usbip-host (modprobe -r usbip-host; modprobe usbip-host) while nothing is exported`);
      }
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

  /**
   * Unbind from usbip-host, if it holds the device; true if it did. No match_busid 'del'
   * (stub_main.c, 6.1): 'del' of an entry whose device the stub holds (STUB_BUSID_ALLOC) marks it
   * STUB_BUSID_REMOV and keeps the name; from then on 'add' sees the name and changes nothing,
   * 'del' keeps REMOV, and every bind is refused ("not in match_busid table... skip!", ENODEV) —
   * a race between one export's give-back and the next export's bind wedged busid 1-1 for the
   * rest of a VM boot. 'del' of an unbound entry (STUB_BUSID_ADDED) does nothing at all. The
   * entry is freed by rebind() instead, as Linux's own `usbip unbind` does.
   */
  unbind(busid: string): boolean {
    if (this.driver(busid) !== "usbip-host") return false;
    this.sysfs.write(`${DRV}/unbind`, busid);
    return true;
  }

  /**
   * After unbind(): write the busid to usbip-host's 'rebind': the stub marks the entry
   * STUB_BUSID_OTHER, lets the driver core attach the device (its original driver takes it
   * back) and then frees the entry. Only for a device the stub held in this plug session: the
   * entry keeps a pointer to the usb_device of its last successful probe, stale after a re-plug.
   * Falls back to a plain reprobe if the stub has no entry (ENODEV).
   */
  rebind(busid: string): void {
    try {
      this.sysfs.write(`${DRV}/rebind`, busid);
    } catch (e) {
      if (!(e instanceof SysfsWriteError && e.errno === "ENODEV")) throw e;
      this.reprobe(busid);
    }
  }

  /** Let the driver core find a driver again (the original one takes the device back). */
  reprobe(busid: string): void {
    this.sysfs.write("bus/usb/drivers_probe", busid);
  }
}
