/**
 * A real device served from userspace: the backend of `export DEVICE --mode userspace`. It is
 * found and opened with libusb (node-usb 2.x, the `usb` package), which also detaches the kernel
 * drivers, sets configurations and gives the drivers back. The URBs go through a usbfs fd of our
 * own (kernel-glue/usbfs.ts) on which every interface is claimed: each CMD_SUBMIT is one
 * USBDEVFS_SUBMITURB (many in flight per endpoint), reaped in completion order; CMD_UNLINK
 * discards it. Control transfers go out with the frontend's raw setup packet, except the
 * requests usbip-host itself handles, which are done the same way here: SET_CONFIGURATION,
 * SET_INTERFACE, CLEAR_FEATURE(ENDPOINT_HALT) (usb_clear_halt) and the hub's
 * SET_FEATURE(PORT_RESET) (stub_rx.c tweak_special_requests).
 * Where usbfs cannot be used (no koffi, a 32-bit ABI), or USBIP_QREXEC_TRANSFERS=libusb asks for
 * it (the benchmarks' comparison), bulk, interrupt and control URBs are libusb transfers instead;
 * node-usb 2.x has no iso API, so the interfaces with iso endpoints then stay on the usbfs fd —
 * or, without one, iso URBs are refused with -EINVAL and a log line.
 * close() releases the interfaces, resets the device and reattaches the kernel drivers.
 */
import { createRequire } from "node:module";
import type * as UsbModule from "usb";
import { Direction, Errno, TransferFlag, UsbSpeed } from "../protocol/constants.js";
import type { EndpointType } from "../protocol/client-decoder.js";
import type { CmdSubmit, DeviceRecord, InterfaceRecord } from "../protocol/messages.js";
import { UsbipError, GlueCode } from "../protocol/errors.js";
import type { SpeedString } from "../protocol/speed.js";
import { parseSetup, Recipient, Request, RequestType, recipient, requestType, ENDPOINT_HALT, type Setup } from "../usb/setup.js";
import { callbackHandle, SettleableHandle, settled, type UrbDevice, type UrbHandle, type UrbResult } from "../device/urb-device.js";
import type { Logger } from "../shared/log.js";
import type { FdWatch } from "../shared/fd-loop.js";
import { Slab } from "../shared/slab.js";
import { Usbfs, USBFS_MAX_ISO_PACKETS, USBFS_URB_ISO_ASAP, USBFS_URB_ZERO_PACKET, UrbType, type UsbfsCompletion, type UsbfsListener } from "../kernel-glue/usbfs.js";
import { isoBytesPerInterval } from "../kernel-glue/endpoints.js";
import { gatherIsoOut, scatterIsoIn } from "../usb/iso-layout.js";

type Usb = typeof UsbModule.usb;
type UsbDevice = UsbModule.usb.Device;

/** node-usb is loaded on first use: the other modes must not depend on its native addon. */
function loadUsb(): Usb {
  try {
    return (createRequire(import.meta.url)("usb") as typeof UsbModule).usb;
  } catch (e) {
    throw new UsbipError(GlueCode.LIBUSB, `userspace mode needs node-usb (the 'usb' package): ${(e as Error).message.split("\n")[0]}`);
  }
}

/** USB_RT_PORT SET_FEATURE(USB_PORT_FEAT_RESET): vhci-hcd's port reset, which usbip-host turns into usb_reset_device(). */
const PORT_RESET = { bmRequestType: 0x23, bRequest: Request.SET_FEATURE, wValue: 4 };
const NO_PACKETS: readonly number[] = [];
const TRANSFER_TIMEOUT = 0; // no timeout: the frontend decides (unlink), as with usbip-host

export class LibusbDevice implements UrbDevice {
  /** room for the IN URBs' data, cut from slabs (shared/slab.ts): the collector's work per URB kept small */
  private readonly inBuffers = new Slab();
  private readonly detached = new Set<number>();
  private readonly claimed = new Set<number>();
  private readonly alt = new Map<number, number>();
  private endpoints = new Map<number, EndpointType>();
  /** iso endpoints of the current settings: usb_submit_urb's bytes per interval */
  private isoLimits = new Map<number, number>();
  /** interfaces with an iso endpoint in some alternate setting: on `usbfs` even when the transfers are libusb's */
  private isoInterfaces = new Set<number>();
  /** the endpoints of those interfaces (every alternate setting) → their interface */
  private isoInterfaceOf = new Map<number, number>();
  /** our usbfs fd: every interface's URBs (allOnUsbfs), or the iso interfaces' only */
  private usbfs: Usbfs | undefined;
  private allOnUsbfs = false;
  private usbfsUnavailable: string | undefined;
  private closed = false;
  private markGone!: () => void;
  private onDetach: ((d: UsbDevice) => void) | undefined;
  /** resolves when libusb reports the device gone (unplugged): the export then ends */
  readonly gone = new Promise<void>((r) => (this.markGone = () => {
    this.isGone = true;
    r();
  }));
  private isGone = false;

  private constructor(
    private readonly usb: Usb,
    private readonly dev: UsbDevice,
    readonly devid: number,
    readonly speed: SpeedString,
    private readonly busid: string,
    private readonly log: Logger,
  ) {}

  static open(busnum: number, devnum: number, busid: string, speed: SpeedString, log: Logger): LibusbDevice {
    const usb = loadUsb();
    const dev = usb.getDeviceList().find((d) => d.busNumber === busnum && d.deviceAddress === devnum);
    if (dev === undefined) throw new UsbipError(GlueCode.LIBUSB, `libusb does not see ${busid} (bus ${busnum} device ${devnum})`);
    try {
      dev.open();
    } catch (e) {
      throw new UsbipError(GlueCode.LIBUSB, `cannot open ${busid} with libusb: ${(e as Error).message} (root, or a udev rule granting access, is needed)`);
    }
    const d = new LibusbDevice(usb, dev, ((busnum << 16) | devnum) >>> 0, speed, busid, log);
    d.findIsoInterfaces();
    const viaLibusb = process.env.USBIP_QREXEC_TRANSFERS === "libusb";
    if (!viaLibusb || d.isoInterfaces.size > 0) {
      try {
        d.usbfs = Usbfs.open(busnum, devnum);
        d.allOnUsbfs = !viaLibusb;
      } catch (e) {
        d.usbfsUnavailable = (e as Error).message;
        log.warn(`${busid}: URBs go through libusb${d.isoInterfaces.size > 0 ? ", isochronous ones are refused" : ""}: ${d.usbfsUnavailable}`);
      }
    }
    d.claimAll();
    d.refreshEndpoints();
    // an idle device submits nothing that could fail: libusb's hotplug event tells us it left
    d.onDetach = (x: UsbDevice) => {
      if (x.busNumber === busnum && x.deviceAddress === devnum) d.markGone();
    };
    usb.on("detach", d.onDetach);
    return d;
  }

  /** The current configuration's interfaces that have an iso endpoint in any alternate setting. */
  private findIsoInterfaces(): void {
    this.isoInterfaces.clear();
    this.isoInterfaceOf.clear();
    try {
      const settings = (this.dev.configDescriptor?.interfaces ?? []).flat();
      for (const s of settings) if (s.endpoints.some((e) => (e.bmAttributes & 3) === 1)) this.isoInterfaces.add(s.bInterfaceNumber);
      for (const s of settings) if (this.isoInterfaces.has(s.bInterfaceNumber)) for (const e of s.endpoints) this.isoInterfaceOf.set(e.bEndpointAddress, s.bInterfaceNumber);
    } catch {
      /* gone */
    }
  }

  /** Interface `n` is claimed on our usbfs fd (all of them, or with libusb's transfers the iso ones). */
  private onUsbfs(n: number): boolean {
    return this.usbfs !== undefined && (this.allOnUsbfs || this.isoInterfaces.has(n));
  }

  /**
   * A control request to send on the usbfs fd: every one when all URBs go there; with libusb's
   * transfers, a standard or class request whose recipient is an iso interface claimed there, or
   * an endpoint of one (usbfs checks the recipient against the submitting fd's claims; vendor
   * requests are not checked).
   */
  private forUsbfs(s: Setup): boolean {
    if (this.usbfs === undefined) return false;
    if (this.allOnUsbfs) return true;
    if (requestType(s) === RequestType.VENDOR) return false;
    const r = recipient(s);
    if (r === Recipient.INTERFACE) return this.usbfs.owns(s.wIndex & 0xff);
    if (r === Recipient.ENDPOINT) {
      const n = this.isoInterfaceOf.get(s.wIndex & 0xff);
      return n !== undefined && this.usbfs.owns(n);
    }
    return false;
  }

  /** Detach kernel drivers from the current configuration's interfaces and claim them (on usbfs, or with libusb). */
  private claimAll(): void {
    for (const iface of this.dev.interfaces ?? []) {
      const n = iface.interfaceNumber;
      try {
        if (iface.isKernelDriverActive()) {
          iface.detachKernelDriver();
          this.detached.add(n);
        }
        if (this.onUsbfs(n)) {
          const r = this.usbfs!.claim(n);
          if (r !== 0) throw new Error(`usbfs claim: errno ${-r}`);
          continue;
        }
        iface.claim();
        this.claimed.add(n);
      } catch (e) {
        this.log.warn(`${this.busid}: cannot claim interface ${n}: ${(e as Error).message}`);
      }
    }
  }

  private async releaseAll(): Promise<void> {
    for (const iface of this.dev.interfaces ?? []) {
      this.usbfs?.release(iface.interfaceNumber);
      if (!this.claimed.delete(iface.interfaceNumber)) continue;
      await new Promise<void>((r) => iface.release(() => r()));
    }
  }

  record(): DeviceRecord & { interfaces: InterfaceRecord[] } {
    const dd = this.dev.deviceDescriptor;
    const ifaces = (this.dev.interfaces ?? []).map((i) => i.descriptor);
    return {
      path: `/sys/bus/usb/devices/${this.busid}`,
      busid: this.busid,
      busnum: this.devid >>> 16,
      devnum: this.devid & 0xffff,
      speed: this.speed === "1.5" ? UsbSpeed.LOW : this.speed === "12" ? UsbSpeed.FULL : this.speed === "480" ? UsbSpeed.HIGH : UsbSpeed.SUPER,
      idVendor: dd.idVendor,
      idProduct: dd.idProduct,
      bcdDevice: dd.bcdDevice,
      bDeviceClass: dd.bDeviceClass,
      bDeviceSubClass: dd.bDeviceSubClass,
      bDeviceProtocol: dd.bDeviceProtocol,
      bConfigurationValue: this.dev.configDescriptor?.bConfigurationValue ?? 0,
      bNumConfigurations: dd.bNumConfigurations,
      bNumInterfaces: ifaces.length,
      interfaces: ifaces.map((i) => ({ bInterfaceClass: i.bInterfaceClass, bInterfaceSubClass: i.bInterfaceSubClass, bInterfaceProtocol: i.bInterfaceProtocol })),
    };
  }

  /** where the URBs go: our usbfs fd, or (usbfs unavailable, or USBIP_QREXEC_TRANSFERS=libusb) libusb's transfers */
  get via(): "usbfs" | "libusb" {
    return this.allOnUsbfs ? "usbfs" : "libusb";
  }

  pollBy(loop: { watch(w: FdWatch): void }): boolean {
    if (!this.allOnUsbfs) return false;
    this.usbfs!.pollBy(loop);
    return true;
  }

  endpoint(ep: number, direction: Direction): EndpointType | undefined {
    if (ep === 0) return "control";
    return this.endpoints.get(ep | (direction === Direction.IN ? 0x80 : 0));
  }

  isoPacketLimit(ep: number, direction: Direction): number | undefined {
    return this.isoLimits.get(ep | (direction === Direction.IN ? 0x80 : 0));
  }

  /**
   * The endpoints of the current configuration and alternate settings, kept here (not read from
   * libusb on each URB): after an unplug libusb has no descriptors, and the URBs still in the
   * pipe must fail with -ENODEV, not look like a frontend's protocol violation.
   */
  private refreshEndpoints(): void {
    const map = new Map<number, EndpointType>();
    const limits = new Map<number, number>();
    const mbps = Number(this.speed);
    try {
      for (const iface of this.dev.configDescriptor?.interfaces ?? []) {
        const setting = iface.find((a) => a.bAlternateSetting === (this.alt.get(a.bInterfaceNumber) ?? 0)) ?? iface[0];
        for (const e of setting?.endpoints ?? []) {
          map.set(e.bEndpointAddress, (["control", "iso", "bulk", "interrupt"] as const)[e.bmAttributes & 3]!);
          if ((e.bmAttributes & 3) === 1) limits.set(e.bEndpointAddress, isoBytesPerInterval(e.wMaxPacketSize, mbps));
        }
      }
    } catch {
      return; // gone: keep what we knew
    }
    this.endpoints = map;
    this.isoLimits = limits;
  }

  submit(cmd: CmdSubmit, out: Buffer): UrbHandle {
    if (this.closed) return settled({ status: Errno.ENODEV });
    if (cmd.ep === 0) return this.control(cmd, out);
    const type = this.endpoint(cmd.ep, cmd.direction);
    if (type === "iso") return this.isoTransfer(cmd, out);
    const usb = this.usb;
    const isIn = cmd.direction === Direction.IN;
    const address = cmd.ep | (isIn ? 0x80 : 0);
    // IN: only the actual_length bytes the device sent are answered, so the buffer need not be zeroed
    const buf = isIn ? this.inBuffers.take(cmd.transferBufferLength) : out;
    if (this.allOnUsbfs) {
      // URB_ZERO_PACKET is honoured on OUT only (usb_submit_urb refuses it on IN), as usbip-host passes it on
      const flags = !isIn && (cmd.transferFlags & TransferFlag.ZERO_PACKET) !== 0 ? USBFS_URB_ZERO_PACKET : 0;
      return this.transferViaUsbfs(type === "interrupt" ? UrbType.INTERRUPT : UrbType.BULK, address, flags, buf, isIn, 0);
    }
    return this.transfer(address, type === "interrupt" ? usb.LIBUSB_TRANSFER_TYPE_INTERRUPT : usb.LIBUSB_TRANSFER_TYPE_BULK, buf, isIn, 0);
  }

  /**
   * One asynchronous libusb transfer; `skip` bytes at the start of the buffer are the setup
   * packet. Every transfer has its own buffer, so the IN data is answered as a view, not copied.
   */
  private transfer(address: number, type: number, buf: Buffer, isIn: boolean, skip: number): UrbHandle {
    const usb = this.usb;
    let t: UsbModule.usb.Transfer | undefined;
    const result = new Promise<UrbResult>((resolve) => {
      t = new usb.Transfer(this.dev, address, type, TRANSFER_TIMEOUT, (error, b, actual) => {
        if (error === undefined || error === null) return resolve(isIn ? { status: 0, data: b.subarray(skip, skip + actual) } : { status: 0, actualLength: actual });
        const st = error.errno;
        if (st === usb.LIBUSB_TRANSFER_CANCELLED) return resolve({ status: Errno.ECONNRESET, cancelled: true, ...(isIn ? { data: b.subarray(skip, skip + actual) } : { actualLength: actual }) });
        if (st === usb.LIBUSB_TRANSFER_NO_DEVICE) this.markGone();
        const status = st === usb.LIBUSB_TRANSFER_STALL ? Errno.EPIPE : st === usb.LIBUSB_TRANSFER_TIMED_OUT ? Errno.ETIMEDOUT : st === usb.LIBUSB_TRANSFER_NO_DEVICE ? Errno.ENODEV : st === usb.LIBUSB_TRANSFER_OVERFLOW ? Errno.EOVERFLOW : Errno.EPROTO;
        resolve(isIn ? { status, data: b.subarray(skip, skip + actual) } : { status, actualLength: actual });
      });
      try {
        t.submit(buf);
      } catch (e) {
        // refused before reaching the device (usbfs checks a control request's recipient, e.g.
        // an endpoint that does not exist): the device would have stalled it
        const errno = (e as { errno?: number }).errno;
        const refused = errno === usb.LIBUSB_ERROR_PIPE || errno === usb.LIBUSB_ERROR_NOT_FOUND || errno === usb.LIBUSB_ERROR_INVALID_PARAM;
        resolve({ status: errno === usb.LIBUSB_ERROR_NO_DEVICE ? Errno.ENODEV : refused ? Errno.EPIPE : Errno.EPROTO });
      }
    });
    return {
      result,
      cancel: () => {
        try {
          t?.cancel();
        } catch {
          /* not pending any more: it completes normally */
        }
      },
    };
  }

  /** A URB on the usbfs fd (iso); its completion, mapped by `result`, is told to a listener as soon as it is reaped. */
  private viaUsbfs(type: number, address: number, flags: number, buffer: Buffer, lengths: readonly number[], result: (c: UsbfsCompletion) => UrbResult): UrbHandle {
    return callbackHandle((settle) => this.usbfs!.submit(type, address, flags, buffer, lengths, { completed: (c) => settle(result(c)) }));
  }

  /** A bulk, interrupt or control URB on the usbfs fd (the hot path: no closure per URB). */
  private transferViaUsbfs(type: number, address: number, flags: number, buffer: Buffer, isIn: boolean, skip: number): UrbHandle {
    const h = new UsbfsTransfer(this, isIn, skip);
    h.canceller = this.usbfs!.submit(type, address, flags, buffer, NO_PACKETS, h);
    return h;
  }

  /**
   * A bulk, interrupt or control URB's usbfs completion as a URB result: usbfs's status is the
   * URB's (a negative errno, as usbip-host sends it); `skip` bytes at the start of the buffer are
   * a control transfer's setup packet.
   */
  transferResult(c: UsbfsCompletion, isIn: boolean, skip: number): UrbResult {
    if (c.status === Errno.ENODEV) this.markGone(); // (-ESHUTDOWN too when an endpoint is disabled: libusb's hotplug event tells an unplug)
    const status = c.cancelled ? Errno.ECONNRESET : c.status;
    return isIn ? { status, cancelled: c.cancelled, data: c.buffer.subarray(skip, skip + c.actualLength) } : { status, cancelled: c.cancelled, actualLength: c.actualLength };
  }

  /**
   * An iso URB through usbfs. usbfs lays the packets out back to back; the frontend's
   * descriptors name an offset each (back to back too for snd-usb-audio and uvcvideo, but not
   * necessarily), so OUT data is gathered from the offsets and IN data put back at them.
   */
  private isoTransfer(cmd: CmdSubmit, out: Buffer): UrbHandle {
    const packets = cmd.isoPackets ?? [];
    if (this.usbfs === undefined) {
      this.log.warn(`${this.busid}: isochronous URB on ep ${cmd.ep} refused (-EINVAL): ${this.usbfsUnavailable ?? "no usbfs fd"}; export this device with --mode kernel`);
      return settled({ status: Errno.EINVAL });
    }
    if (packets.length > USBFS_MAX_ISO_PACKETS) {
      this.log.warn(`${this.busid}: isochronous URB with ${packets.length} packets refused (-EINVAL): usbfs takes at most ${USBFS_MAX_ISO_PACKETS}`);
      return settled({ status: Errno.EINVAL });
    }
    const isIn = cmd.direction === Direction.IN;
    const lengths = packets.map((p) => p.length);
    const buf = isIn ? Buffer.alloc(lengths.reduce((a, b) => a + b, 0)) : gatherIsoOut(packets, out);
    return this.viaUsbfs(UrbType.ISO, cmd.ep | (isIn ? 0x80 : 0), USBFS_URB_ISO_ASAP, buf, lengths, (c): UrbResult => {
      const isoPackets = c.packets;
      const status = c.cancelled ? Errno.ECONNRESET : c.status;
      if (!isIn) return { status, cancelled: c.cancelled, actualLength: isoPackets.reduce((a, p) => a + p.actualLength, 0), isoPackets, startFrame: c.startFrame };
      const data = scatterIsoIn(packets, c.buffer, isoPackets.map((p) => p.actualLength), cmd.transferBufferLength);
      return { status, cancelled: c.cancelled, data, isoPackets, startFrame: c.startFrame };
    });
  }

  private control(cmd: CmdSubmit, out: Buffer): UrbHandle {
    const s = parseSetup(cmd.setup);
    const usb = this.usb;
    const std = requestType(s) === RequestType.STANDARD;
    if (std && recipient(s) === Recipient.DEVICE && s.bRequest === Request.SET_CONFIGURATION) return { result: this.setConfiguration(s.wValue & 0xff), cancel() {} };
    if (std && recipient(s) === Recipient.INTERFACE && s.bRequest === Request.SET_INTERFACE) return { result: this.setInterface(s.wIndex & 0xff, s.wValue & 0xff), cancel() {} };
    if (std && recipient(s) === Recipient.ENDPOINT && s.bRequest === Request.CLEAR_FEATURE && s.wValue === ENDPOINT_HALT) {
      // usb_clear_halt, as usbip-host does: the request, and the host side's data toggle reset
      const addr = s.wIndex & 0xff;
      if (this.forUsbfs(s)) return { result: this.usbfs!.clearHalt(addr).then((r) => ({ status: r === 0 ? 0 : Errno.EPIPE })), cancel() {} };
      return { result: new Promise((resolve) => this.dev.__clearHalt(addr, (e) => resolve({ status: e ? Errno.EPIPE : 0 }))), cancel() {} };
    }
    if (std && recipient(s) === Recipient.DEVICE && s.bRequest === Request.SET_ADDRESS) return settled({ status: 0 }); // vhci-hcd never sends it
    if (s.bmRequestType === PORT_RESET.bmRequestType && s.bRequest === PORT_RESET.bRequest && s.wValue === PORT_RESET.wValue) {
      if (this.allOnUsbfs) {
        this.log.info(`${this.busid}: port reset → USBDEVFS_RESET`);
        return { result: this.usbfs!.reset().then((r) => ({ status: r === 0 ? 0 : Errno.EPROTO })), cancel() {} };
      }
      this.log.info(`${this.busid}: port reset → libusb_reset_device`);
      return { result: new Promise((resolve) => this.dev.reset((e) => resolve({ status: e ? Errno.EPROTO : 0 }))), cancel() {} };
    }
    const isIn = cmd.direction === Direction.IN;
    const buf = Buffer.alloc(8 + (isIn ? s.wLength : out.length));
    cmd.setup.copy(buf, 0);
    if (!isIn) out.copy(buf, 8);
    buf.writeUInt16LE(isIn ? s.wLength : out.length, 6);
    if (this.forUsbfs(s)) return this.transferViaUsbfs(UrbType.CONTROL, 0, 0, buf, isIn, 8);
    return this.transfer(0, usb.LIBUSB_TRANSFER_TYPE_CONTROL, buf, isIn, 8);
  }

  private async setConfiguration(value: number): Promise<UrbResult> {
    await this.releaseAll();
    const err = await new Promise<Error | undefined>((r) => this.dev.setConfiguration(value, (e) => r(e ?? undefined)));
    this.alt.clear();
    this.findIsoInterfaces();
    this.claimAll();
    this.refreshEndpoints();
    return { status: err ? Errno.EPIPE : 0 };
  }

  private async setInterface(n: number, alt: number): Promise<UrbResult> {
    if (this.usbfs?.owns(n)) {
      const r = this.usbfs.setInterface(n, alt);
      if (r === 0) {
        this.alt.set(n, alt);
        this.refreshEndpoints();
      } else this.log.warn(`${this.busid}: SET_INTERFACE ${n} alt ${alt} through usbfs failed: errno ${-r}`);
      return { status: r === 0 ? 0 : Errno.EPIPE };
    }
    const iface = (this.dev.interfaces ?? []).find((i) => i.interfaceNumber === n);
    if (iface === undefined) return { status: Errno.EPIPE };
    const err = await new Promise<Error | undefined>((r) => iface.setAltSetting(alt, (e) => r(e ?? undefined)));
    if (!err) {
      this.alt.set(n, alt);
      this.refreshEndpoints();
    }
    return { status: err ? Errno.EPIPE : 0 };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.onDetach) this.usb.removeListener("detach", this.onDetach);
    await this.releaseAll();
    await this.usbfs?.close();
    // A session may end mid-transfer (the frontend killed during a READ): the device is then
    // mid-protocol (a bulk-only disk waiting to send the rest of the data), and a driver bound
    // now would hang in its first command until a timeout and its own reset (20 s for
    // usb-storage, and a reset we sent after binding would wait behind it). So reset FIRST, while
    // no interface has a driver, then give the interfaces back.
    if (!this.isGone) {
      const err = await new Promise<Error | undefined>((r) => this.dev.reset((e) => r(e ?? undefined)));
      if (err && !this.isGone) this.log.warn(`${this.busid}: reset before giving the device back failed: ${err.message}`);
    }
    for (const iface of this.dev.interfaces ?? []) {
      if (!this.detached.delete(iface.interfaceNumber) || this.isGone) continue; // an unplugged device has no driver to return to
      try {
        // a class driver bound to an earlier interface may have claimed this one already
        // (snd-usb-audio takes its streaming interfaces from the control interface's probe)
        if (iface.isKernelDriverActive()) continue;
        iface.attachKernelDriver();
      } catch (e) {
        this.log.warn(`${this.busid}: cannot reattach the kernel driver of interface ${iface.interfaceNumber}: ${(e as Error).message}`);
      }
    }
    try {
      this.dev.close();
    } catch {
      /* already gone (unplugged) */
    }
  }
}

/** A bulk, interrupt or control usbfs URB: its completion as LibusbDevice.transferResult says. */
class UsbfsTransfer extends SettleableHandle implements UsbfsListener {
  constructor(
    private readonly device: LibusbDevice,
    private readonly isIn: boolean,
    private readonly skip: number,
  ) {
    super();
  }

  completed(c: UsbfsCompletion): void {
    this.settle(this.device.transferResult(c, this.isIn, this.skip));
  }
}
