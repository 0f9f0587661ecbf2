/**
 * Isochronous transfers through usbfs (/dev/bus/usb/BBB/DDD), for the userspace backend: libusb
 * has an iso API but node-usb 2.x does not expose it, so the interfaces with iso endpoints are
 * claimed on a second usbfs fd of the device (and the control requests addressed to them sent
 * on it too) and their URBs submitted with USBDEVFS_SUBMITURB
 * (type ISO, ISO_ASAP), reaped with USBDEVFS_REAPURBNDELAY when poll() says some completed
 * (usbfs signals POLLOUT for a completed URB, POLLHUP/POLLERR once the device is gone), and
 * cancelled with USBDEVFS_DISCARDURB. Wire facts (include/uapi/linux/usbdevice_fs.h, 64-bit):
 *
 *   struct usbdevfs_urb (56 bytes)          struct usbdevfs_iso_packet_desc (12 bytes, from 56)
 *     0 u8 type (0 = ISO)                      0 u32 length
 *     1 u8 endpoint (address, 0x80 = IN)       4 u32 actual_length
 *     4 s32 status                             8 u32 status (a negative errno)
 *     8 u32 flags (0x02 = ISO_ASAP)
 *    16 ptr buffer                         usbfs lays the packets out back to back in the buffer
 *    24 s32 buffer_length                  (packet i at the sum of the lengths before it), and
 *    28 s32 actual_length                  takes 1..128 packets per URB (devio.c).
 *    32 s32 start_frame
 *    36 s32 number_of_packets
 *    40 s32 error_count
 *    44 u32 signr (0: no signal)
 *    48 ptr usercontext
 */
import { closeSync, openSync } from "node:fs";
import { GlueError, GlueErrorCode } from "./errors.js";
import { libc, POLLERR, POLLHUP, POLLOUT, type Libc } from "../shared/libc.js";

const URB_SIZE = 56;
const DESC_SIZE = 12;
/** devio.c: number_of_packets must be 1..128 */
export const USBFS_MAX_ISO_PACKETS = 128;
const URB_TYPE_ISO = 0;
const URB_TYPE_CONTROL = 2;
const URB_ISO_ASAP = 0x02;
const EAGAIN = 11;
const ENODEV = 19;

/** _IOC(dir, 'U', nr, size): dir 1 = write (_IOW), 2 = read (_IOR), as asm-generic/ioctl.h */
const ioc = (dir: number, nr: number, size: number) => ((dir << 30) | (size << 16) | (0x55 << 8) | nr) >>> 0;
/** the usbfs ioctls used here (test/usbfs-iso.test.ts compares them with the C header's) */
export const USBFS_IOCTL = {
  SETINTERFACE: ioc(2, 4, 8),
  SUBMITURB: ioc(2, 10, URB_SIZE),
  DISCARDURB: ioc(0, 11, 0),
  REAPURBNDELAY: ioc(1, 13, 8),
  CLAIMINTERFACE: ioc(2, 15, 4),
  RELEASEINTERFACE: ioc(2, 16, 4),
} as const;
const { SETINTERFACE, SUBMITURB, DISCARDURB, REAPURBNDELAY, CLAIMINTERFACE, RELEASEINTERFACE } = USBFS_IOCTL;
/** struct usbdevfs_urb's field offsets on 64-bit ABIs, and its iso descriptors' */
export const USBFS_URB_LAYOUT = { size: URB_SIZE, type: 0, endpoint: 1, status: 4, flags: 8, buffer: 16, buffer_length: 24, actual_length: 28, start_frame: 32, number_of_packets: 36, error_count: 40, signr: 44, usercontext: 48, iso_frame_desc: 56, descSize: DESC_SIZE } as const;

export interface IsoCompletion {
  /** the URB's status: 0, or a negative errno (-ECONNRESET after a discard, -ENODEV, …) */
  status: number;
  /** the URB's actual_length (a control URB's data stage; iso: the packets' sum) */
  actualLength: number;
  /** the transfer buffer, packets back to back (IN: what the device sent, at those offsets) */
  buffer: Buffer;
  packets: { actualLength: number; status: number }[];
  startFrame: number;
  /** it ended because cancel() discarded it */
  cancelled: boolean;
}

export interface IsoHandle {
  readonly result: Promise<IsoCompletion>;
  cancel(): void;
}

interface Pending {
  urb: Buffer;
  buffer: Buffer;
  count: number;
  discarded: boolean;
  resolve: (c: IsoCompletion) => void;
}

export class UsbfsIso {
  private readonly pending = new Map<bigint, Pending>();
  private readonly claimed = new Set<number>();
  private pumping: Promise<void> | undefined;
  private fd: number;
  private gone = false;

  private constructor(
    private readonly c: Libc,
    fd: number,
    readonly node: string,
  ) {
    this.fd = fd;
  }

  /** Open the device's usbfs node; throws a GlueError naming why (koffi missing, permissions, a 32-bit ABI). */
  static open(busnum: number, devnum: number): UsbfsIso {
    if (process.arch !== "x64" && process.arch !== "arm64" && process.arch !== "riscv64" && process.arch !== "ppc64" && process.arch !== "loong64") throw new GlueError(GlueErrorCode.LIBUSB, `usbfs iso transfers are implemented for 64-bit ABIs only, not ${process.arch}`);
    const c = libc();
    const node = `/dev/bus/usb/${String(busnum).padStart(3, "0")}/${String(devnum).padStart(3, "0")}`;
    let fd: number;
    try {
      fd = openSync(node, "r+");
    } catch (e) {
      throw new GlueError(GlueErrorCode.LIBUSB, `cannot open ${node} for iso transfers: ${(e as Error).message}`);
    }
    return new UsbfsIso(c, fd, node);
  }

  private call(request: number, arg: Buffer | null): number {
    if (this.fd < 0) return -ENODEV;
    return this.c.ioctl(this.fd, request, arg) < 0 ? -this.c.errno() : 0;
  }

  /** USBDEVFS_CLAIMINTERFACE: 0 or a negative errno (-EBUSY: a driver or another fd has it). */
  claim(n: number): number {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n, 0);
    const r = this.call(CLAIMINTERFACE, b);
    if (r === 0) this.claimed.add(n);
    return r;
  }

  release(n: number): void {
    if (!this.claimed.delete(n)) return;
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n, 0);
    this.call(RELEASEINTERFACE, b);
  }

  owns(n: number): boolean {
    return this.claimed.has(n);
  }

  /** USBDEVFS_SETINTERFACE (struct { u32 interface; u32 altsetting; }): 0 or a negative errno. */
  setInterface(n: number, alt: number): number {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(n, 0);
    b.writeUInt32LE(alt, 4);
    return this.call(SETINTERFACE, b);
  }

  /**
   * Submit one iso URB on endpoint `address` with `lengths.length` packets laid out back to back
   * in `buffer` (OUT: the data; IN: room for it). A refusal settles at once with its errno.
   */
  submit(address: number, buffer: Buffer, lengths: readonly number[]): IsoHandle {
    return this.submitUrb(URB_TYPE_ISO, address, URB_ISO_ASAP, buffer, lengths);
  }

  /**
   * A control transfer on this fd: a URB of type CONTROL on endpoint 0 whose buffer is the 8-byte
   * setup packet followed by the data stage (IN: room for wLength bytes). For requests addressed
   * to an interface claimed here or to one of its endpoints (a UAC1 SET_CUR sampling frequency to
   * the iso endpoint, GET_INTERFACE): usbfs checks a standard or class request's recipient against
   * the interfaces the submitting fd claimed, and libusb's fd did not claim these.
   */
  submitControl(buffer: Buffer): IsoHandle {
    return this.submitUrb(URB_TYPE_CONTROL, 0, 0, buffer, []);
  }

  private submitUrb(type: number, address: number, flags: number, buffer: Buffer, lengths: readonly number[]): IsoHandle {
    const count = lengths.length;
    const urb = Buffer.alloc(URB_SIZE + DESC_SIZE * count);
    urb.writeUInt8(type, 0);
    urb.writeUInt8(address, 1);
    urb.writeUInt32LE(flags, 8);
    urb.writeBigUInt64LE(buffer.length > 0 ? this.c.address(buffer) : 0n, 16);
    urb.writeInt32LE(buffer.length, 24);
    urb.writeInt32LE(count, 36);
    for (let i = 0; i < count; i++) urb.writeUInt32LE(lengths[i]!, URB_SIZE + DESC_SIZE * i);
    const key = this.c.address(urb);
    urb.writeBigUInt64LE(key, 48);
    let entry!: Pending;
    const result = new Promise<IsoCompletion>((resolve) => (entry = { urb, buffer, count, discarded: false, resolve }));
    const r = this.gone ? -ENODEV : this.call(SUBMITURB, urb);
    if (r !== 0) {
      entry.resolve({ status: r, actualLength: 0, buffer, packets: lengths.map(() => ({ actualLength: 0, status: r })), startFrame: 0, cancelled: false });
      return { result, cancel() {} };
    }
    this.pending.set(key, entry);
    this.pump();
    return {
      result,
      cancel: () => {
        if (!this.pending.has(key) || entry.discarded) return;
        entry.discarded = true;
        // EINVAL: it completed meanwhile and waits to be reaped; it is then answered as completed
        this.call(DISCARDURB, urb);
      },
    };
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Keep one poll() in flight on a worker thread while any URB is. */
  private pump(): void {
    if (this.pumping !== undefined || this.pending.size === 0 || this.fd < 0) return;
    this.pumping = this.c.pollAsync(this.fd, POLLOUT, 250).then(
      (revents) => {
        this.pumping = undefined;
        this.reap();
        if ((revents & (POLLERR | POLLHUP)) !== 0) this.failAll(-ENODEV);
        this.pump();
      },
      () => {
        this.pumping = undefined;
        this.failAll(-ENODEV);
      },
    );
  }

  /** Reap every completed URB (REAPURBNDELAY until EAGAIN). */
  private reap(): void {
    const out = Buffer.alloc(8);
    for (;;) {
      const r = this.call(REAPURBNDELAY, out);
      if (r === -EAGAIN) return;
      if (r !== 0) {
        if (r === -ENODEV) this.failAll(-ENODEV);
        return;
      }
      const key = out.readBigUInt64LE(0);
      const e = this.pending.get(key);
      if (e === undefined) continue;
      this.pending.delete(key);
      const u = e.urb;
      const packets: IsoCompletion["packets"] = [];
      for (let i = 0; i < e.count; i++) packets.push({ actualLength: u.readUInt32LE(URB_SIZE + DESC_SIZE * i + 4), status: u.readInt32LE(URB_SIZE + DESC_SIZE * i + 8) });
      const status = u.readInt32LE(4);
      e.resolve({ status, actualLength: u.readInt32LE(28), buffer: e.buffer, packets, startFrame: u.readInt32LE(32), cancelled: e.discarded && status !== 0 });
    }
  }

  /** The device is gone: what is still pending will never be reaped. */
  private failAll(status: number): void {
    this.gone = true;
    for (const [k, e] of this.pending) {
      this.pending.delete(k);
      e.resolve({ status, actualLength: 0, buffer: e.buffer, packets: Array.from({ length: e.count }, () => ({ actualLength: 0, status })), startFrame: 0, cancelled: false });
    }
  }

  /** Discard what is in flight, wait for it (bounded), release the interfaces and close the fd. */
  async close(): Promise<void> {
    if (this.fd < 0) return;
    for (const e of this.pending.values()) {
      e.discarded = true;
      this.call(DISCARDURB, e.urb);
    }
    const deadline = Date.now() + 2000;
    while (this.pending.size > 0 && Date.now() < deadline) {
      this.reap();
      if (this.pending.size > 0) await new Promise((r) => setTimeout(r, 5));
    }
    await this.pumping;
    for (const n of [...this.claimed]) this.release(n);
    this.failAll(-ENODEV);
    closeSync(this.fd);
    this.fd = -1;
  }
}
