/**
 * USB gadgets from configfs on dummy_hcd (no hardware): a high-speed mass-storage disk on an
 * image file, and a SourceSink device (0525:a4a0) that the host-side `usbtest` driver binds.
 * dummy_hcd.N's host side is bus N+1, so the gadget on dummy_udc.N appears as busid "<N+1>-1".
 */
import { existsSync, mkdirSync, readdirSync, readlinkSync, rmdirSync, symlinkSync, unlinkSync, writeFileSync, openSync, writeSync, closeSync } from "node:fs";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { check, modprobe, sh, tryRead, waitFor } from "./lib.js";

const CFG = "/sys/kernel/config/usb_gadget";

export interface Gadget {
  name: string;
  udc: string;
  /** busid of the device on the host side of dummy_hcd */
  busid: string;
  remove(): void;
}

let dummyLoaded = false;
let dummyParams: string[] = [];
export function loadDummyHcd(): void {
  if (dummyLoaded) return;
  // three UDCs (dummy_udc.0-2): up to three gadgets at once
  sh("modprobe", ["dummy_hcd", "num=3", ...dummyParams]);
  modprobe("libcomposite", "usb_f_mass_storage", "usb_f_ss_lb", "usb-storage", "sd_mod", "usbtest");
  // usb-storage waits delay_use (1 s) before scanning a new disk, for slow real devices; the
  // gadgets and their vhci imports are ready at once, and the suite attaches hundreds of times
  writeFileSync("/sys/module/usb_storage/parameters/delay_use", "0\n");
  // configfs is a module here: mount it once it is loaded
  if (!existsSync(CFG)) sh("mount", ["-t", "configfs", "configfs", "/sys/kernel/config"]);
  check(existsSync(CFG), "configfs has no usb_gadget directory");
  dummyLoaded = true;
}

/**
 * Run `fn` with dummy_hcd loaded with extra parameters (is_super_speed=Y: its UDCs and root hubs
 * are SuperSpeed, so every gadget enumerates at 5000), then reload it as the other scenarios
 * expect. Every gadget must be gone before and after (checkGadgetsGone).
 */
export async function withDummyHcd<T>(params: string[], fn: () => Promise<T>): Promise<T> {
  const reload = (p: string[]) => {
    if (existsSync("/sys/module/dummy_hcd")) sh("modprobe", ["-r", "dummy_hcd"]);
    dummyLoaded = false;
    dummyParams = p;
    loadDummyHcd();
  };
  reload(params);
  try {
    return await fn();
  } finally {
    reload([]);
  }
}

/** UDCs present (dummy_udc.0, dummy_udc.1, ...). */
export function udcs(): string[] {
  return readdirSync("/sys/class/udc").sort();
}

function w(p: string, v: string): void {
  writeFileSync(p, v);
}

function create(name: string, udc: string, vendor: number, product: number, fn: string, setup: (fnDir: string) => void): Gadget {
  loadDummyHcd();
  const g = path.join(CFG, name);
  mkdirSync(g);
  w(`${g}/idVendor`, `0x${vendor.toString(16)}`);
  w(`${g}/idProduct`, `0x${product.toString(16)}`);
  w(`${g}/bcdUSB`, "0x0200");
  mkdirSync(`${g}/strings/0x409`);
  w(`${g}/strings/0x409/manufacturer`, "usbip-qrexec tests");
  w(`${g}/strings/0x409/product`, name);
  w(`${g}/strings/0x409/serialnumber`, `SN-${name}`);
  mkdirSync(`${g}/configs/c.1`);
  w(`${g}/configs/c.1/MaxPower`, "100");
  const fnDir = `${g}/functions/${fn}`;
  mkdirSync(fnDir);
  setup(fnDir);
  symlinkSync(fnDir, `${g}/configs/c.1/${fn}`);
  w(`${g}/UDC`, udc);
  const bus = Number(/dummy_udc\.(\d+)/.exec(udc)?.[1] ?? "0") + 1;
  // the bus number of dummy_hcd.N's root hub is not fixed: find it
  const busid = findBusidOnUdc(udc) ?? `${bus}-1`;
  return {
    name,
    udc,
    busid,
    remove() {
      try {
        w(`${g}/UDC`, "\n"); // unbind from the UDC ("" would be a 0-byte write the kernel never sees)
      } catch {
        /* already unbound */
      }
      if (existsSync(`${g}/configs/c.1/${fn}`)) unlinkSync(`${g}/configs/c.1/${fn}`);
      for (const d of [`${g}/configs/c.1/strings/0x409`, `${g}/configs/c.1`, fnDir, `${g}/strings/0x409`, g]) if (existsSync(d)) rmdirSync(d);
    },
  };
}

/** busid of the device connected to the root hub that belongs to this UDC's dummy_hcd. */
function findBusidOnUdc(udc: string): string | undefined {
  const n = /dummy_udc\.(\d+)/.exec(udc)?.[1];
  if (n === undefined) return undefined;
  const hcd = `/sys/devices/platform/dummy_hcd.${n}`;
  if (!existsSync(hcd)) return undefined;
  // with is_super_speed=Y dummy_hcd.N has a high-speed and a SuperSpeed root hub, and the gadget
  // connects to the SuperSpeed one
  const hubs = readdirSync(hcd).filter((d) => /^usb\d+$/.test(d));
  const usb = hubs.find((d) => dummyParams.includes("is_super_speed=Y") && tryRead(`${hcd}/${d}/speed`) === "5000") ?? hubs[0];
  return usb === undefined ? undefined : `${usb.slice(3)}-1`;
}

/** A disk image of `mib` MiB of random data (so a wrong block never checksums right). */
export function makeImage(file: string, mib: number): void {
  const fd = openSync(file, "w");
  for (let i = 0; i < mib; i++) writeSync(fd, randomBytes(1 << 20));
  closeSync(fd);
}

export async function massStorage(name: string, udc: string, image: string): Promise<Gadget> {
  const g = create(name, udc, 0x1d6b, 0x0104, "mass_storage.0", (f) => {
    w(`${f}/stall`, "1");
    w(`${f}/lun.0/removable`, "0");
    w(`${f}/lun.0/file`, image);
  });
  await waitFor(`${g.busid} to enumerate`, () => tryRead(`/sys/bus/usb/devices/${g.busid}/idVendor`) === "1d6b", 20_000);
  return g;
}

export async function sourceSink(name: string, udc: string): Promise<Gadget> {
  const g = create(name, udc, 0x0525, 0xa4a0, "SourceSink.0", () => {});
  await waitFor(`${g.busid} to enumerate`, () => tryRead(`/sys/bus/usb/devices/${g.busid}/idProduct`) === "a4a0", 20_000);
  return g;
}

export function driverOf(busid: string): string | undefined {
  const l = readlinkSafe(`/sys/bus/usb/devices/${busid}/driver`);
  return l === undefined ? undefined : path.basename(l);
}

function readlinkSafe(p: string): string | undefined {
  try {
    return readlinkSync(p);
  } catch {
    return undefined;
  }
}

/** The driver bound to the first interface of a device (usb-storage, usbtest, ...). */
export function interfaceDriver(busid: string): string | undefined {
  const dir = `/sys/bus/usb/devices/${busid}`;
  if (!existsSync(dir)) return undefined;
  const intf = readdirSync(dir).find((d) => d.startsWith(`${busid}:`));
  if (intf === undefined) return undefined;
  const l = readlinkSafe(`${dir}/${intf}/driver`);
  return l === undefined ? undefined : path.basename(l);
}

export function checkGadgetsGone(): void {
  check(readdirSync(CFG).length === 0, `gadgets left in configfs: ${readdirSync(CFG).join(", ")}`);
}
