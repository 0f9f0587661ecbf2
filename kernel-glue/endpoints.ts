/**
 * The exported device's endpoints in its current configuration and alternate settings, from
 * sysfs (<busid>:<cfg>.<if>/ep_XX/{bEndpointAddress,type}), for the backend relay's checks.
 * Re-read after SET_CONFIGURATION / SET_INTERFACE (markStale) and once on a miss.
 */
import type { EndpointType } from "../protocol/client-decoder.js";
import type { DeviceView } from "../protocol/relay-rules.js";
import type { Sysfs } from "./sysfs.js";

const TYPES: Record<string, EndpointType> = { Control: "control", Bulk: "bulk", Interrupt: "interrupt", Isoc: "iso" };

export class SysfsDeviceView implements DeviceView {
  private eps = new Map<number, EndpointType>();
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
    const dir = `bus/usb/devices/${this.busid}`;
    for (const intf of this.sysfs.list(dir).filter((f) => f.startsWith(`${this.busid}:`))) {
      for (const ep of this.sysfs.list(`${dir}/${intf}`).filter((f) => /^ep_[0-9a-f]{2}$/.test(f))) {
        const addr = Number.parseInt(this.sysfs.tryRead(`${dir}/${intf}/${ep}/bEndpointAddress`) ?? ep.slice(3), 16);
        const type = TYPES[this.sysfs.tryRead(`${dir}/${intf}/${ep}/type`) ?? ""];
        if (type !== undefined && !Number.isNaN(addr)) eps.set(addr & 0x8f, type);
      }
    }
    this.eps = eps;
    this.stale = false;
  }

  endpoint(ep: number, direction: number): EndpointType | undefined {
    if (ep === 0) return "control";
    const key = ep | (direction === 1 ? 0x80 : 0);
    if (this.stale) this.read();
    let t = this.eps.get(key);
    if (t === undefined) {
      this.read(); // an alternate setting may have changed since
      t = this.eps.get(key);
    }
    return t;
  }
}
