/**
 * The exported device's endpoints in its current configuration and alternate settings, from
 * sysfs (<busid>:<cfg>.<if>/ep_XX/{bEndpointAddress,type,wMaxPacketSize}), for the backend
 * relay's checks.
 * Re-read after SET_CONFIGURATION / SET_INTERFACE (markStale) and once on a miss.
 */
import { Direction } from "../protocol/constants.js";
import type { EndpointType } from "../protocol/client-decoder.js";
import type { DeviceView } from "../protocol/relay-rules.js";
import type { Message } from "../protocol/messages.js";
import type { Sysfs } from "./sysfs.js";

const TYPES: Record<string, EndpointType> = { Control: "control", Bulk: "bulk", Interrupt: "interrupt", Isoc: "iso" };

export class SysfsDeviceView implements DeviceView {
  private eps = new Map<number, EndpointType>();
  /** iso endpoints: bytes per service interval */
  private isoLimits = new Map<number, number>();
  private stale = true;

  constructor(
    private readonly sysfs: Sysfs,
    private readonly busid: string,
    readonly devid: number,
  ) {}

  markStale(): void {
    this.stale = true;
  }

  /** key: ep number | 0x80 for IN */
  private read(): void {
    const eps = new Map<number, EndpointType>();
    const isoLimits = new Map<number, number>();
    const dir = `bus/usb/devices/${this.busid}`;
    const speed = Number(this.sysfs.tryRead(`${dir}/speed`) ?? "0");
    for (const intf of this.sysfs.list(dir).filter((f) => f.startsWith(`${this.busid}:`))) {
      for (const ep of this.sysfs.list(`${dir}/${intf}`).filter((f) => /^ep_[0-9a-f]{2}$/.test(f))) {
        const addr = Number.parseInt(this.sysfs.tryRead(`${dir}/${intf}/${ep}/bEndpointAddress`) ?? ep.slice(3), 16);
        const type = TYPES[this.sysfs.tryRead(`${dir}/${intf}/${ep}/type`) ?? ""];
        if (type === undefined || Number.isNaN(addr)) continue;
        eps.set(addr & 0x8f, type);
        const wMax = Number.parseInt(this.sysfs.tryRead(`${dir}/${intf}/${ep}/wMaxPacketSize`) ?? "", 16);
        if (type === "iso" && !Number.isNaN(wMax)) isoLimits.set(addr & 0x8f, isoBytesPerInterval(wMax, speed));
      }
    }
    this.eps = eps;
    this.isoLimits = isoLimits;
    this.stale = false;
  }

  endpoint(ep: number, direction: number): EndpointType | undefined {
    if (ep === 0) return "control";
    const key = ep | (direction === Direction.IN ? 0x80 : 0);
    if (this.stale) this.read();
    let t = this.eps.get(key);
    if (t === undefined) {
      this.read(); // an alternate setting may have changed since
      t = this.eps.get(key);
    }
    return t;
  }

  isoPacketLimit(ep: number, direction: number): number | undefined {
    return this.endpoint(ep, direction) === "iso" ? this.isoLimits.get(ep | (direction === Direction.IN ? 0x80 : 0)) : undefined;
  }
}

/**
 * usb_submit_urb's per-packet maximum from sysfs's wMaxPacketSize (hex, the raw field) and
 * speed (Mb/s): bits 0-10 are the size, bits 11-12 the extra transactions per microframe at
 * high speed. sysfs does not show the SuperSpeed companion (bMaxBurst, Mult), so above high
 * speed the bound is the largest the companion can declare (16 bursts × 3).
 */
export function isoBytesPerInterval(wMaxPacketSize: number, speedMbps: number): number {
  const size = wMaxPacketSize & 0x7ff;
  if (speedMbps >= 5000) return size * 16 * 3;
  if (speedMbps === 480) return size * (1 + ((wMaxPacketSize >> 11) & 3));
  return size;
}

/**
 * RelayOptions.onMessage for a device view: SET_CONFIGURATION (0x00/0x09) and SET_INTERFACE
 * (0x01/0x0b) change the endpoints, so the view is read again when one is submitted and when it
 * is answered.
 */
export function watchReconfiguration(view: SysfsDeviceView): (from: unknown, m: Message) => void {
  const reconfiguring = new Set<number>();
  return (_from, m) => {
    if (m.kind === "CMD_SUBMIT" && m.ep === 0 && ((m.setup[0] === 0x00 && m.setup[1] === 0x09) || (m.setup[0] === 0x01 && m.setup[1] === 0x0b))) {
      reconfiguring.add(m.seqnum);
      view.markStale();
    } else if (m.kind === "RET_SUBMIT" && reconfiguring.delete(m.seqnum)) view.markStale();
  };
}
