/**
 * Local USB devices from /sys/bus/usb/devices: resolution of a DEVICE argument (busid like
 * "2-1" or "1-1.4", or "0xVVVV.0xPPPP" with exactly one match) and descriptions for `list`.
 */
import { GlueError, GlueErrorCode } from "./errors.js";
import { Sysfs } from "./sysfs.js";

const BUSID = /^\d+-\d+(\.\d+)*$/;
const VIDPID = /^0x([0-9a-fA-F]{4})\.0x([0-9a-fA-F]{4})$/;

export interface InterfaceInfo {
  name: string;
  bInterfaceClass: number;
  bInterfaceSubClass: number;
  bInterfaceProtocol: number;
  driver: string | undefined;
}

export interface UsbDeviceInfo {
  busid: string;
  busnum: number;
  devnum: number;
  /** busnum << 16 | devnum */
  devid: number;
  /** the sysfs speed string (1.5, 12, 480, 5000, …) */
  speed: string;
  idVendor: number;
  idProduct: number;
  manufacturer: string | undefined;
  product: string | undefined;
  serial: string | undefined;
  bDeviceClass: number;
  driver: string | undefined;
  interfaces: InterfaceInfo[];
  /** usbip_status when bound to usbip-host: 1 available, 2 used, 3 error */
  usbipStatus: number | undefined;
  /** the device is itself imported through vhci-hcd (never re-export it: a bind loop) */
  onVhci: boolean;
  /** some configuration/alternate setting has an isochronous endpoint: userspace mode cannot serve it */
  isochronous: boolean;
}

/** Any isochronous endpoint in the raw descriptors sysfs shows (device descriptor, then every configuration). */
export function hasIsochronous(raw: Buffer | undefined): boolean {
  if (raw === undefined || raw.length < 18) return false;
  for (let p = 18; p + 4 <= raw.length; ) {
    const total = raw.readUInt16LE(p + 2);
    if (total < 9) return false;
    const cfg = raw.subarray(p, Math.min(raw.length, p + total));
    for (let q = 0; q + 2 <= cfg.length && cfg[q]! >= 2; q += cfg[q]!) if (cfg[q + 1] === 5 && q + 3 < cfg.length && (cfg[q + 3]! & 3) === 1) return true;
    p += total;
  }
  return false;
}

const hex = (s: string | undefined) => (s === undefined ? 0 : Number.parseInt(s, 16));

export function isBusid(s: string): boolean {
  return BUSID.test(s);
}

/** Resolve a DEVICE argument to a busid, with a one-line error for everything else. */
export function resolveDevice(sysfs: Sysfs, spec: string): string {
  if (spec.includes(":")) throw new GlueError(GlueErrorCode.BAD_DEVICE, `"${spec}" is an interface; export the whole device (its busid, e.g. "${spec.split(":")[0]}")`);
  if (BUSID.test(spec)) {
    if (!sysfs.exists(`bus/usb/devices/${spec}/devnum`)) throw new GlueError(GlueErrorCode.NO_DEVICE, `no such USB device: ${spec}`);
    return spec;
  }
  const m = VIDPID.exec(spec);
  if (m === null) throw new GlueError(GlueErrorCode.BAD_DEVICE, `invalid device "${spec}": expected a busid like 2-1 or 1-1.4, or 0xVVVV.0xPPPP`);
  const [vid, pid] = [Number.parseInt(m[1]!, 16), Number.parseInt(m[2]!, 16)];
  const found = busids(sysfs).filter((b) => hex(sysfs.tryRead(`bus/usb/devices/${b}/idVendor`)) === vid && hex(sysfs.tryRead(`bus/usb/devices/${b}/idProduct`)) === pid);
  if (found.length === 0) throw new GlueError(GlueErrorCode.NO_DEVICE, `no USB device with id ${m[1]}:${m[2]}`);
  if (found.length > 1) throw new GlueError(GlueErrorCode.AMBIGUOUS_DEVICE, `${found.length} devices match ${m[1]}:${m[2]} (${found.join(", ")}); name one by busid`);
  return found[0]!;
}

/** All device busids (not root hubs, not interfaces). */
export function busids(sysfs: Sysfs): string[] {
  return sysfs
    .list("bus/usb/devices")
    .filter((d) => BUSID.test(d))
    .sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
}

export function describeDevice(sysfs: Sysfs, busid: string): UsbDeviceInfo {
  const d = `bus/usb/devices/${busid}`;
  const num = (f: string) => Number.parseInt(sysfs.tryRead(`${d}/${f}`) ?? "", 10);
  const busnum = num("busnum");
  const devnum = num("devnum");
  if (Number.isNaN(busnum) || Number.isNaN(devnum)) throw new GlueError(GlueErrorCode.NO_DEVICE, `no such USB device: ${busid}`);
  const interfaces: InterfaceInfo[] = sysfs
    .list(d)
    .filter((f) => f.startsWith(`${busid}:`))
    .sort()
    .map((name) => ({
      name,
      bInterfaceClass: hex(sysfs.tryRead(`${d}/${name}/bInterfaceClass`)),
      bInterfaceSubClass: hex(sysfs.tryRead(`${d}/${name}/bInterfaceSubClass`)),
      bInterfaceProtocol: hex(sysfs.tryRead(`${d}/${name}/bInterfaceProtocol`)),
      driver: sysfs.linkName(`${d}/${name}/driver`),
    }));
  const status = sysfs.tryRead(`${d}/usbip_status`);
  return {
    busid,
    busnum,
    devnum,
    devid: ((busnum << 16) | devnum) >>> 0,
    speed: sysfs.tryRead(`${d}/speed`) ?? "unknown",
    idVendor: hex(sysfs.tryRead(`${d}/idVendor`)),
    idProduct: hex(sysfs.tryRead(`${d}/idProduct`)),
    manufacturer: sysfs.tryRead(`${d}/manufacturer`),
    product: sysfs.tryRead(`${d}/product`),
    serial: sysfs.tryRead(`${d}/serial`),
    bDeviceClass: hex(sysfs.tryRead(`${d}/bDeviceClass`)),
    driver: sysfs.linkName(`${d}/driver`),
    interfaces,
    usbipStatus: status === undefined ? undefined : Number.parseInt(status, 10),
    onVhci: (sysfs.realPath(d) ?? "").includes("/vhci_hcd"),
    isochronous: hasIsochronous(sysfs.tryReadBytes(`${d}/descriptors`)),
  };
}

/** Devices that may be exported: not hubs, not themselves imported through vhci-hcd. */
export function exportableDevices(sysfs: Sysfs): UsbDeviceInfo[] {
  return busids(sysfs)
    .map((b) => describeDevice(sysfs, b))
    .filter((d) => d.bDeviceClass !== 0x09 && !d.onVhci);
}

/**
 * Refuse what usbip-host refuses (hubs; devices on vhci-hcd: stub_probe skips them) with a clear
 * message. The userspace backend serves a device through usbfs, not usbip-host, so it may pass an
 * imported device on (a chain of qubes); `userspace` says the export is that one.
 */
export function checkExportable(info: UsbDeviceInfo, o: { userspace?: boolean } = {}): void {
  if (info.bDeviceClass === 0x09) throw new GlueError(GlueErrorCode.BAD_DEVICE, `${info.busid} is a hub; hubs cannot be exported`);
  if (info.onVhci && o.userspace !== true) throw new GlueError(GlueErrorCode.BAD_DEVICE, `${info.busid} is itself imported through vhci-hcd, which usbip-host refuses; pass it on with --mode userspace`);
}
