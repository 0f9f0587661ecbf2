/**
 * Fake sysfs trees for unit tests of kernel-glue (never the proof: test/vm is). Files are plain
 * files; symlinks stand for driver links; a recording Sysfs subclass can fail chosen writes
 * with an errno, as the kernel would (EBUSY for a port taken meanwhile, …).
 */
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Sysfs, SysfsWriteError } from "../../kernel-glue/sysfs.js";

export function fakeRoot(): string {
  return mkdtempSync(path.join(tmpdir(), "usbip-qrexec-sysfs-"));
}

export function put(root: string, rel: string, content: string): void {
  const p = path.join(root, rel);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, content);
}

export function link(root: string, rel: string, target: string): void {
  const p = path.join(root, rel);
  mkdirSync(path.dirname(p), { recursive: true });
  symlinkSync(target, p);
}

export interface FakeDevice {
  busid: string;
  busnum: number;
  devnum: number;
  speed?: string;
  idVendor?: string;
  idProduct?: string;
  bDeviceClass?: string;
  driver?: string;
  product?: string;
  interfaces?: Array<{ cls: string; driver?: string }>;
  /** put the device under a vhci_hcd platform device */
  onVhci?: boolean;
  usbipStatus?: number;
}

/** A device under devices/…, linked from bus/usb/devices/<busid> like the real tree. */
export function addDevice(root: string, d: FakeDevice): void {
  const real = d.onVhci ? `devices/platform/vhci_hcd.0/usb${d.busnum}/${d.busid}` : `devices/pci0000:00/0000:00:14.0/usb${d.busnum}/${d.busid}`;
  const attrs: Record<string, string> = {
    busnum: `${d.busnum}\n`,
    devnum: `${d.devnum}\n`,
    speed: `${d.speed ?? "480"}\n`,
    idVendor: `${d.idVendor ?? "1d6b"}\n`,
    idProduct: `${d.idProduct ?? "0104"}\n`,
    bDeviceClass: `${d.bDeviceClass ?? "00"}\n`,
  };
  if (d.product) attrs.product = `${d.product}\n`;
  if (d.usbipStatus !== undefined) attrs.usbip_status = `${d.usbipStatus}\n`;
  for (const [k, v] of Object.entries(attrs)) put(root, `${real}/${k}`, v);
  if (d.driver) link(root, `${real}/driver`, `../../../../bus/usb/drivers/${d.driver}`);
  (d.interfaces ?? []).forEach((intf, i) => {
    const name = `${d.busid}:1.${i}`;
    put(root, `${real}/${name}/bInterfaceClass`, `${intf.cls}\n`);
    put(root, `${real}/${name}/bInterfaceSubClass`, "06\n");
    put(root, `${real}/${name}/bInterfaceProtocol`, "50\n");
    if (intf.driver) link(root, `${real}/${name}/driver`, `../../../../../bus/usb/drivers/${intf.driver}`);
  });
  mkdirSync(path.join(root, "bus/usb/devices"), { recursive: true });
  symlinkSync(path.join(root, real), path.join(root, "bus/usb/devices", d.busid));
}

/** Records every write; `fail` decides per write whether to throw an errno instead. */
export class RecordingSysfs extends Sysfs {
  readonly writes: Array<[string, string]> = [];
  constructor(
    root: string,
    private readonly fail: (rel: string, data: string) => string | undefined = () => undefined,
  ) {
    super(root);
  }
  override write(rel: string, data: string): void {
    const errno = this.fail(rel, data);
    if (errno !== undefined) throw new SysfsWriteError(this.path(rel), errno, data);
    this.writes.push([rel, data]);
    super.write(rel, data);
  }
}
