/**
 * Base of the TypeScript device models: answers the standard requests on endpoint 0 from the
 * model's descriptors (GET_DESCRIPTOR device/configuration/string, SET/GET_CONFIGURATION,
 * SET/GET_INTERFACE, GET_STATUS, CLEAR/SET_FEATURE(ENDPOINT_HALT), SET_ADDRESS) and hands class
 * requests and the other endpoints to the model. Unsupported requests stall (-EPIPE), as a
 * device would.
 */
import { Direction, Errno, UsbSpeed } from "../protocol/constants.js";
import type { EndpointType } from "../protocol/client-decoder.js";
import type { CmdSubmit, DeviceRecord, InterfaceRecord } from "../protocol/messages.js";
import type { SpeedString } from "../protocol/speed.js";
import { DescType, encodeConfigDescriptor, encodeDeviceDescriptor, encodeStringDescriptor, endpointType, type ConfigDesc, type DeviceDesc, type EndpointDesc } from "../usb/descriptors.js";
import { ENDPOINT_HALT, parseSetup, Recipient, Request, RequestType, recipient, requestType, type Setup } from "../usb/setup.js";
import { settled, type UrbDevice, type UrbHandle, type UrbResult } from "./urb-device.js";

export const STALL: UrbResult = { status: Errno.EPIPE };

/** The device descriptor fields every model of ours shares: USB 2.0, class at interface level, 64-byte ep 0, vendor 1d6b. */
export function modelDescriptor(idProduct: number, product: string, configs: DeviceDesc["configs"]): DeviceDesc {
  return { bcdUSB: 0x0200, bDeviceClass: 0, bDeviceSubClass: 0, bDeviceProtocol: 0, bMaxPacketSize0: 64, idVendor: 0x1d6b, idProduct, bcdDevice: 0x0100, manufacturer: "usbip-qrexec", product, configs };
}

export abstract class VirtualDevice implements UrbDevice {
  protected configuration = 0;
  protected readonly halted = new Set<number>();
  /** interface number → its current alternate setting (absent = 0) */
  protected readonly alternates = new Map<number, number>();

  constructor(
    readonly name: string,
    readonly devid: number,
    readonly speed: SpeedString,
    protected readonly desc: DeviceDesc,
  ) {}

  protected get config(): ConfigDesc | undefined {
    return this.desc.configs.find((c) => c.bConfigurationValue === this.configuration);
  }

  /** the endpoint descriptor with this address (bit 7 = IN) in the current configuration and alternate settings */
  protected endpointDesc(address: number): EndpointDesc | undefined {
    for (const i of this.config?.interfaces ?? []) {
      if (i.bAlternateSetting !== (this.alternates.get(i.bInterfaceNumber) ?? 0)) continue;
      for (const e of i.endpoints) if (e.bEndpointAddress === address) return e;
    }
    return undefined;
  }

  /** usb_submit_urb's per-packet maximum on an iso endpoint: size bits × high-bandwidth transactions */
  isoPacketLimit(ep: number, direction: Direction): number | undefined {
    const e = this.endpointDesc(ep | (direction === Direction.IN ? 0x80 : 0));
    if (e === undefined || endpointType(e) !== "iso") return undefined;
    return (e.wMaxPacketSize & 0x7ff) * (this.speed === "480" ? 1 + ((e.wMaxPacketSize >> 11) & 3) : 1);
  }

  endpoint(ep: number, direction: Direction): EndpointType | undefined {
    if (ep === 0) return "control";
    const e = this.endpointDesc(ep | (direction === Direction.IN ? 0x80 : 0));
    return e === undefined ? undefined : endpointType(e);
  }

  record(): DeviceRecord & { interfaces: InterfaceRecord[] } {
    const c = this.config ?? this.desc.configs[0]!;
    const speed = this.speed === "1.5" ? UsbSpeed.LOW : this.speed === "12" ? UsbSpeed.FULL : this.speed === "480" ? UsbSpeed.HIGH : UsbSpeed.SUPER;
    return {
      path: `/sys/devices/virtual/usbip-qrexec/${this.name}`,
      busid: this.name,
      busnum: this.devid >>> 16,
      devnum: this.devid & 0xffff,
      speed,
      idVendor: this.desc.idVendor,
      idProduct: this.desc.idProduct,
      bcdDevice: this.desc.bcdDevice,
      bDeviceClass: this.desc.bDeviceClass,
      bDeviceSubClass: this.desc.bDeviceSubClass,
      bDeviceProtocol: this.desc.bDeviceProtocol,
      bConfigurationValue: this.configuration,
      bNumConfigurations: this.desc.configs.length,
      bNumInterfaces: new Set(c.interfaces.map((i) => i.bInterfaceNumber)).size,
      // one record per interface: its alternate setting 0, as usbip_host lists them
      interfaces: c.interfaces.filter((i) => i.bAlternateSetting === 0).map((i) => ({ bInterfaceClass: i.bInterfaceClass, bInterfaceSubClass: i.bInterfaceSubClass, bInterfaceProtocol: i.bInterfaceProtocol })),
    };
  }

  submit(cmd: CmdSubmit, out: Buffer): UrbHandle {
    if (cmd.ep === 0) {
      const setup = parseSetup(cmd.setup);
      let r: UrbResult | Promise<UrbResult>;
      try {
        r = this.control(setup, out);
      } catch {
        r = STALL;
      }
      const trim = (x: UrbResult): UrbResult => (x.data !== undefined && x.data.length > setup.wLength ? { ...x, data: x.data.subarray(0, setup.wLength) } : x);
      return r instanceof Promise ? { result: r.then(trim), cancel() {} } : settled(trim(r));
    }
    const address = cmd.ep | (cmd.direction === Direction.IN ? 0x80 : 0);
    if (this.halted.has(address)) return settled(STALL);
    return this.transfer(address, cmd, out);
  }

  async close(): Promise<void> {}

  private control(s: Setup, out: Buffer): UrbResult | Promise<UrbResult> {
    if (requestType(s) !== RequestType.STANDARD) return this.classRequest(s, out) ?? STALL;
    switch (s.bRequest) {
      case Request.GET_DESCRIPTOR: {
        const type = s.wValue >> 8;
        const index = s.wValue & 0xff;
        if (recipient(s) !== Recipient.DEVICE) return this.classRequest(s, out) ?? STALL;
        if (type === DescType.DEVICE) return { status: 0, data: encodeDeviceDescriptor(this.desc) };
        if (type === DescType.CONFIG) {
          const c = this.desc.configs[index];
          return c === undefined ? STALL : { status: 0, data: encodeConfigDescriptor(this.desc, c) };
        }
        if (type === DescType.STRING) {
          const d = encodeStringDescriptor(this.desc, index);
          return d === undefined ? STALL : { status: 0, data: d };
        }
        return STALL; // e.g. DEVICE_QUALIFIER: a full-speed-only model has none
      }
      case Request.SET_CONFIGURATION: {
        const v = s.wValue & 0xff;
        if (v !== 0 && !this.desc.configs.some((c) => c.bConfigurationValue === v)) return STALL;
        this.configuration = v;
        this.halted.clear();
        this.alternates.clear();
        this.configured(v);
        return { status: 0 };
      }
      case Request.GET_CONFIGURATION:
        return { status: 0, data: Buffer.from([this.configuration]) };
      case Request.SET_INTERFACE: {
        const ifnum = s.wIndex & 0xff;
        const alt = s.wValue & 0xff;
        if (!this.config?.interfaces.some((i) => i.bInterfaceNumber === ifnum && i.bAlternateSetting === alt)) return STALL;
        for (const i of this.config.interfaces) if (i.bInterfaceNumber === ifnum) for (const e of i.endpoints) this.halted.delete(e.bEndpointAddress);
        this.alternates.set(ifnum, alt);
        this.alternateSet(ifnum, alt);
        return { status: 0 };
      }
      case Request.GET_INTERFACE:
        if (!this.config?.interfaces.some((i) => i.bInterfaceNumber === (s.wIndex & 0xff))) return STALL;
        return { status: 0, data: Buffer.from([this.alternates.get(s.wIndex & 0xff) ?? 0]) };
      case Request.GET_STATUS:
        return { status: 0, data: Buffer.from([recipient(s) === Recipient.ENDPOINT && this.halted.has(s.wIndex & 0xff) ? 1 : 0, 0]) };
      case Request.CLEAR_FEATURE:
      case Request.SET_FEATURE:
        if (recipient(s) === Recipient.ENDPOINT && s.wValue === ENDPOINT_HALT) {
          const address = s.wIndex & 0xff;
          if (this.endpointDesc(address) === undefined) return STALL;
          if (s.bRequest === Request.SET_FEATURE) this.halted.add(address);
          else {
            this.halted.delete(address);
            this.haltCleared(address);
          }
          return { status: 0 };
        }
        return { status: 0 }; // device remote wakeup / test mode: accepted, no effect
      case Request.SET_ADDRESS:
        return { status: 0 };
      default:
        return STALL;
    }
  }

  /** A class or vendor request (or an interface-recipient GET_DESCRIPTOR); undefined = stall. */
  protected classRequest(_s: Setup, _out: Buffer): UrbResult | Promise<UrbResult> | undefined {
    return undefined;
  }
  /** SET_CONFIGURATION(value) was accepted (0 = unconfigured). */
  protected configured(_value: number): void {}
  /** SET_INTERFACE(ifnum, alt) was accepted (e.g. an audio or video stream starts or stops). */
  protected alternateSet(_ifnum: number, _alt: number): void {}
  /** CLEAR_FEATURE(ENDPOINT_HALT) on this endpoint. */
  protected haltCleared(_address: number): void {}
  /** A transfer on a non-control endpoint of the current configuration. */
  protected abstract transfer(address: number, cmd: CmdSubmit, out: Buffer): UrbHandle;
}
