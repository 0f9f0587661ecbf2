/**
 * vhci-hcd (the importing side's virtual host controller), through sysfs:
 * /sys/devices/platform/vhci_hcd.0/{nports,attach,detach,status,status.N}.
 *
 * status lines (kernel >= 4.14.8): "hub port sta spd dev sockfd local_busid", hs lines first;
 * sockfd is meaningless outside the attaching process. Tokenised on whitespace, never by width.
 * attach takes "port sockfd devid speed" and picks the hub by speed (>= SUPER → ss);
 * a port already in use answers EBUSY.
 */
import { UsbSpeed } from "../protocol/constants.js";
import { GlueError, GlueErrorCode } from "./errors.js";
import { Sysfs, SysfsWriteError } from "./sysfs.js";
import { runningExports } from "../shared/rundir.js";

/** enum usbip_device_status, vhci side (include/uapi/linux/usbip.h). */
export const VdevStatus = { NULL: 4, NOTASSIGNED: 5, USED: 6, ERROR: 7 } as const;

export interface VhciPort {
  hub: "hs" | "ss";
  /** global port number, as attach/detach take it */
  port: number;
  status: number;
  speed: number;
  devid: number;
  sockfd: number;
  /** busid of the virtual device on the vhci bus ("0-0" when free) */
  localBusid: string;
}

/** Parse one status / status.N file. Refuses the pre-4.13 format (no hub column). */
export function parseVhciStatus(text: string, file = "status"): VhciPort[] {
  const ports: VhciPort[] = [];
  for (const line of text.split("\n")) {
    const t = line.trim().split(/\s+/);
    if (t.length === 0 || t[0] === "") continue;
    if (t[0] === "hub") continue;
    if (t[0] === "port" || t[0] === "prt" || /^\d+$/.test(t[0]!)) {
      throw new GlueError(GlueErrorCode.OLD_KERNEL, `${file}: vhci-hcd status format of kernels older than 4.13 is not supported`);
    }
    if ((t[0] !== "hs" && t[0] !== "ss") || t.length < 7) {
      throw new GlueError(GlueErrorCode.SYSFS, `${file}: unexpected vhci status line "${line.trim()}"`);
    }
    const [hub, port, sta, spd, dev, sockfd, local] = t as [string, string, string, string, string, string, string];
    ports.push({
      hub: hub as "hs" | "ss",
      port: Number.parseInt(port, 10),
      status: Number.parseInt(sta, 10),
      speed: Number.parseInt(spd, 10),
      devid: Number.parseInt(dev, 16),
      sockfd: Number.parseInt(sockfd, 10),
      localBusid: local,
    });
    if (Number.isNaN(ports.at(-1)!.port) || Number.isNaN(ports.at(-1)!.status)) throw new GlueError(GlueErrorCode.SYSFS, `${file}: bad numbers in "${line.trim()}"`);
  }
  return ports;
}

/** vhci-hcd has a high-speed hub (LOW..WIRELESS) and a SuperSpeed hub (SUPER and above). */
export const hubForSpeed = (speed: number): "hs" | "ss" => (speed >= UsbSpeed.SUPER ? "ss" : "hs");

export class Vhci {
  constructor(readonly sysfs: Sysfs = new Sysfs()) {}

  /** The controller directory holding the control files (vhci_hcd.0, or vhci_hcd on old kernels). */
  dir(): string {
    for (const d of ["devices/platform/vhci_hcd.0", "devices/platform/vhci_hcd"]) if (this.sysfs.exists(`${d}/attach`)) return d;
    throw new GlueError(GlueErrorCode.NO_VHCI, "vhci-hcd is not loaded (modprobe vhci-hcd)");
  }

  /** status, status.1, … status.N (one per controller), in controller order. */
  statusFiles(): string[] {
    const d = this.dir();
    return this.sysfs
      .list(d)
      .filter((f) => /^status(\.\d+)?$/.test(f))
      .sort((a, b) => Number(a.split(".")[1] ?? 0) - Number(b.split(".")[1] ?? 0))
      .map((f) => `${d}/${f}`);
  }

  /** The ports of each controller (one status file each), in controller order. */
  controllers(): VhciPort[][] {
    return this.statusFiles().map((f) => parseVhciStatus(this.sysfs.read(f), this.sysfs.path(f)));
  }

  ports(): VhciPort[] {
    return this.controllers().flat();
  }

  nports(): number {
    return Number.parseInt(this.sysfs.read(`${this.dir()}/nports`), 10);
  }

  port(n: number): VhciPort | undefined {
    return this.ports().find((p) => p.port === n);
  }

  /**
   * Free ports on the hub that fits the speed, in port order — rotated to start after `after`
   * when given, by controller: a port released a moment ago may still be retried by its root
   * hub, and the hub enumerates one port at a time (hub_event holds the hub while a port's
   * GET_DESCRIPTORs time out, tens of seconds when the device left mid-enumeration), so a device
   * attached on any port of that hub right away may not enumerate for as long. The controllers
   * after the one of `after` come first, that one last (its ports after `after` first).
   *
   * Ports of a controller that carries one of the busids in `exported` (devices this machine
   * exports, e.g. an imported device passed on in userspace mode) come after all others: a
   * SET_CONFIGURATION or SET_INTERFACE holds its controller's bandwidth_mutex until the device
   * answers, and if the device that answers sits behind the same controller, the usbfs call that
   * serves the request waits on that same mutex (a deadlock seen on 6.1 when a device was
   * imported back into the machine that exported it).
   */
  freePorts(speed: number, after?: number, exported: ReadonlySet<string> = new Set()): number[] {
    const hub = hubForSpeed(speed);
    const carries = (p: VhciPort) => p.status !== VdevStatus.NULL && [...exported].some((b) => b === p.localBusid || b.startsWith(`${p.localBusid}.`));
    const controllers = this.controllers();
    const last = after === undefined ? -1 : controllers.findIndex((ports) => ports.some((p) => p.port === after));
    const order = controllers.map((_, i) => controllers[(last + 1 + i) % controllers.length]!);
    const clear: number[] = [];
    const shared: number[] = [];
    for (const ports of order) {
      let free = ports.filter((p) => p.hub === hub && p.status === VdevStatus.NULL).map((p) => p.port);
      if (after !== undefined && ports.some((p) => p.port === after)) free = [...free.filter((p) => p > after), ...free.filter((p) => p <= after)];
      (ports.some(carries) ? shared : clear).push(...free);
    }
    return [...clear, ...shared];
  }

  /** Attach on `port`: the fd is resolved in this process's fd table. */
  attach(port: number, fd: number, devid: number, speed: number): void {
    this.sysfs.write(`${this.dir()}/attach`, `${port} ${fd} ${devid >>> 0} ${speed}`);
  }

  /**
   * The one free-port loop: try `attach(port)` on each free port of the hub for `speed` (after
   * `after`, see freePorts) until one is not EBUSY — a port another import took meanwhile.
   * Returns what `attach` returned. Every import attaches through it.
   */
  async attachOnFreePort<T>(speed: number, after: number | undefined, attach: (port: number) => T | Promise<T>): Promise<T> {
    const tried = new Set<number>();
    for (;;) {
      const port = this.freePorts(speed, after, new Set(runningExports().keys())).find((p) => !tried.has(p));
      if (port === undefined) throw new GlueError(GlueErrorCode.NO_FREE_PORT, `no free vhci-hcd port on the ${hubForSpeed(speed) === "ss" ? "SuperSpeed" : "high-speed"} hub`);
      tried.add(port);
      try {
        return await attach(port);
      } catch (e) {
        if (e instanceof SysfsWriteError && e.errno === "EBUSY") continue;
        if (e instanceof SysfsWriteError) throw new GlueError(GlueErrorCode.ATTACH, `vhci-hcd refused the attach on port ${port}: ${e.errno}${e.errno === "EINVAL" ? " (fd not a stream socket, or bad speed/devid)" : ""}`);
        throw e;
      }
    }
  }

  /** Attach `fd` of this process (kernel mode: the qrexec socket, fd 0) on the first free port; returns the port. */
  attachFd(fd: number, devid: number, speed: number, after?: number): Promise<number> {
    return this.attachOnFreePort(speed, after, (port) => {
      this.attach(port, fd, devid, speed);
      return port;
    });
  }

  detach(port: number): void {
    this.sysfs.write(`${this.dir()}/detach`, String(port));
  }

  /** Detach unless the port is already free (the kernel releases it itself on EOF); never throws. */
  release(port: number): void {
    try {
      const p = this.port(port);
      if (p && p.status !== VdevStatus.NULL) this.detach(port);
    } catch {
      /* released meanwhile */
    }
  }

  /** Wait until the port is USED and its virtual device exists on the vhci bus; returns its busid. */
  async waitAttached(port: number, timeoutMs: number): Promise<string> {
    return (await this.waitEnumerated(port, timeoutMs))!;
  }

  /**
   * waitAttached, giving up early when `stalled()` says the port will not enumerate (the relay
   * sees vhci-hcd silent with nothing outstanding): then resolves undefined.
   */
  async waitEnumerated(port: number, timeoutMs: number, stalled?: () => boolean): Promise<string | undefined> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const p = this.port(port);
      if (p && p.status === VdevStatus.USED && p.localBusid !== "0-0" && this.sysfs.exists(`bus/usb/devices/${p.localBusid}`)) return p.localBusid;
      if (!p || p.status === VdevStatus.NULL) throw new GlueError(GlueErrorCode.ATTACH, `port ${port} was released before the device enumerated (the remote side closed the connection; see its log and dmesg)`);
      if (stalled?.()) return undefined;
      if (Date.now() > end) throw new GlueError(GlueErrorCode.TIMEOUT, `the device did not enumerate on vhci port ${port} within ${Math.round(timeoutMs / 1000)} s: vhci-hcd's root hub did not take it (see dmesg); detach and attach again (relay mode moves to another port by itself)`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Wait until the port is free and its virtual device gone. */
  async waitDetached(port: number, localBusid: string | undefined, timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const p = this.port(port);
      const gone = localBusid === undefined || localBusid === "0-0" || !this.sysfs.exists(`bus/usb/devices/${localBusid}`);
      if ((!p || p.status === VdevStatus.NULL) && gone) return;
      if (Date.now() > end) throw new GlueError(GlueErrorCode.TIMEOUT, `port ${port} still in use after ${Math.round(timeoutMs / 1000)} s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
