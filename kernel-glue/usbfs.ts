/**
 * URBs on a device's usbfs node (/dev/bus/usb/BBB/DDD), for the userspace backend: the
 * interfaces are claimed on an fd of our own and every URB — bulk, interrupt, control, iso —
 * submitted with USBDEVFS_SUBMITURB, reaped with USBDEVFS_REAPURBNDELAY when poll() says some
 * completed (usbfs signals POLLOUT for a completed URB, POLLHUP/POLLERR once the device is
 * gone), cancelled with USBDEVFS_DISCARDURB. No libusb event thread and no copy of libusb's
 * transfer state between: one ioctl submits, one reaps. (node-usb 2.x has no iso API at all;
 * when this fd cannot be had, the backend falls back to node-usb's transfers.)
 * Wire facts (include/uapi/linux/usbdevice_fs.h, 64-bit):
 *
 *   struct usbdevfs_urb (56 bytes)          struct usbdevfs_iso_packet_desc (12 bytes, from 56)
 *     0 u8 type (0 ISO 1 INT 2 CTRL 3 BULK)    0 u32 length
 *     1 u8 endpoint (address, 0x80 = IN)       4 u32 actual_length
 *     4 s32 status                             8 u32 status (a negative errno)
 *     8 u32 flags (0x02 ISO_ASAP,
 *                  0x40 ZERO_PACKET)       usbfs lays iso packets out back to back in the buffer
 *    16 ptr buffer                         (packet i at the sum of the lengths before it), and
 *    24 s32 buffer_length                  takes 1..128 packets per URB (devio.c). A control
 *    28 s32 actual_length                  URB's buffer is the 8-byte setup packet, then the
 *    32 s32 start_frame                    data stage; wLength must equal buffer_length - 8.
 *    36 s32 number_of_packets
 *    40 s32 error_count
 *    44 u32 signr (0: no signal)
 *    48 ptr usercontext
 */
import { closeSync, openSync } from "node:fs";
import { GlueError, GlueErrorCode } from "./errors.js";
import { libc, POLLERR, POLLHUP, POLLOUT, type Libc } from "../shared/libc.js";
import type { FdWatch } from "../shared/fd-loop.js";
import { Slab } from "../shared/slab.js";

const URB_SIZE = 56;
const DESC_SIZE = 12;
/** devio.c: number_of_packets must be 1..128 */
export const USBFS_MAX_ISO_PACKETS = 128;
/** usbdevfs_urb.type */
export const UrbType = { ISO: 0, INTERRUPT: 1, CONTROL: 2, BULK: 3 } as const;
/** usbdevfs_urb.flags: an iso URB starts in the next free frame */
export const USBFS_URB_ISO_ASAP = 0x02;
/** usbdevfs_urb.flags: end a bulk OUT transfer whose length is a multiple of the packet size with a zero-length packet (URB_ZERO_PACKET) */
export const USBFS_URB_ZERO_PACKET = 0x40;
/** the completion's packets of a URB that has none (every bulk, interrupt and control URB) */
const NO_PACKETS: UsbfsCompletion["packets"] = Object.freeze([]) as unknown as UsbfsCompletion["packets"];
const EAGAIN = 11;
const ENODEV = 19;

/** _IOC(dir, 'U', nr, size): dir 1 = write (_IOW), 2 = read (_IOR), as asm-generic/ioctl.h */
const ioc = (dir: number, nr: number, size: number) => ((dir << 30) | (size << 16) | (0x55 << 8) | nr) >>> 0;
/** the usbfs ioctls used here (test/usbfs.test.ts compares them with the C header's) */
export const USBFS_IOCTL = {
  SETINTERFACE: ioc(2, 4, 8),
  SUBMITURB: ioc(2, 10, URB_SIZE),
  DISCARDURB: ioc(0, 11, 0),
  REAPURBNDELAY: ioc(1, 13, 8),
  CLAIMINTERFACE: ioc(2, 15, 4),
  RELEASEINTERFACE: ioc(2, 16, 4),
  RESET: ioc(0, 20, 0),
  CLEAR_HALT: ioc(2, 21, 4),
} as const;
const { SETINTERFACE, SUBMITURB, DISCARDURB, REAPURBNDELAY, CLAIMINTERFACE, RELEASEINTERFACE, RESET, CLEAR_HALT } = USBFS_IOCTL;
/** struct usbdevfs_urb's field offsets on 64-bit ABIs, and its iso descriptors' */
export const USBFS_URB_LAYOUT = { size: URB_SIZE, type: 0, endpoint: 1, status: 4, flags: 8, buffer: 16, buffer_length: 24, actual_length: 28, start_frame: 32, number_of_packets: 36, error_count: 40, signr: 44, usercontext: 48, iso_frame_desc: 56, descSize: DESC_SIZE } as const;

/** The usbfs node of a device; USBIP_QREXEC_DEV moves /dev (unit tests). */
export function usbfsNode(busnum: number, devnum: number): string {
  return `${process.env.USBIP_QREXEC_DEV ?? "/dev"}/bus/usb/${String(busnum).padStart(3, "0")}/${String(devnum).padStart(3, "0")}`;
}

export interface UsbfsCompletion {
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

/** Who hears a URB's completion (an object, not a closure: one per URB on the hot path). */
export interface UsbfsListener {
  completed(c: UsbfsCompletion): void;
}

/** A URB submitted and not yet reaped; cancel() discards it. */
class Pending {
  discarded = false;
  constructor(
    private readonly owner: Usbfs,
    readonly key: number,
    readonly urb: Buffer,
    readonly buffer: Buffer,
    readonly count: number,
    readonly listener: UsbfsListener,
  ) {}

  cancel(): void {
    this.owner.discard(this);
  }
}

const NOT_PENDING = { cancel(): void {} };

export class Usbfs {
  /** URBs submitted and not yet reaped, by the address of their struct usbdevfs_urb */
  private readonly pending = new Map<number, Pending>();
  private readonly claimed = new Set<number>();
  private pumping: Promise<void> | undefined;
  /** the URBs' structs, cut from slabs (kept until reaped: usbfs writes the results into them) */
  private readonly structs = new Slab(64 << 10, 8);
  /** where REAPURBNDELAY writes the reaped URB's address */
  private readonly reaped = Buffer.alloc(8);
  /** a poll() loop of the caller's watches the fd (pollBy): no poll of our own */
  private polledBy = false;
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
  static open(busnum: number, devnum: number): Usbfs {
    if (process.arch !== "x64" && process.arch !== "arm64" && process.arch !== "riscv64" && process.arch !== "ppc64" && process.arch !== "loong64") throw new GlueError(GlueErrorCode.LIBUSB, `usbfs transfers are implemented for 64-bit ABIs only, not ${process.arch}`);
    const c = libc();
    const node = usbfsNode(busnum, devnum);
    let fd: number;
    try {
      fd = openSync(node, "r+");
    } catch (e) {
      throw new GlueError(GlueErrorCode.LIBUSB, `cannot open ${node}: ${(e as Error).message}`);
    }
    return new Usbfs(c, fd, node);
  }

  private call(request: number, arg: Buffer | null): number {
    if (this.fd < 0) return -ENODEV;
    return this.c.ioctl(this.fd, request, arg) < 0 ? -this.c.errno() : 0;
  }

  /** an ioctl that waits for the device, on koffi's worker thread: 0, or -1 when it failed (errno is that thread's, not ours to read) */
  private async callAsync(request: number, arg: Buffer | null): Promise<number> {
    if (this.fd < 0) return -ENODEV;
    return (await this.c.ioctlAsync(this.fd, request, arg)) < 0 ? -1 : 0;
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
   * USBDEVFS_CLEAR_HALT (usb_clear_halt: CLEAR_FEATURE(ENDPOINT_HALT) to the device, and the host
   * side's data toggle reset): 0 or negative. It waits for the device (up to usbcore's
   * 5 s control timeout), so it runs off the event loop.
   */
  clearHalt(address: number): Promise<number> {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(address, 0);
    return this.callAsync(CLEAR_HALT, b);
  }

  /**
   * USBDEVFS_RESET (usb_reset_device), the interfaces given up around it as libusb does: a reset
   * unbinds usbfs from the interfaces it holds and would let it rebind them later; released
   * first, they stay driverless, and are claimed again after. 0 or negative.
   */
  async reset(): Promise<number> {
    const held = [...this.claimed];
    for (const n of held) this.release(n);
    const r = await this.callAsync(RESET, null);
    for (const n of held) this.claim(n);
    return r;
  }

  /**
   * Submit one URB of `type` on endpoint `address` (0x80: IN); `listener` is told its
   * completion when it is reaped (or at once, when usbfs refuses it), synchronously: what it
   * answers leaves in the same turn of the loop. The buffer: OUT, the data; IN, room for it.
   * Iso: `lengths` are the packets' (laid out back to back in the buffer), flags ISO_ASAP.
   * Control (endpoint 0): the 8-byte setup packet, then the data stage (IN: room for wLength
   * bytes); usbfs checks a standard or class request's recipient (an interface, an endpoint)
   * against the interfaces this fd claimed.
   */
  submit(type: number, address: number, flags: number, buffer: Buffer, lengths: readonly number[], listener: UsbfsListener): { cancel(): void } {
    const count = lengths.length;
    const urb = this.structs.takeZeroed(URB_SIZE + DESC_SIZE * count);
    urb.writeUInt8(type, 0);
    urb.writeUInt8(address, 1);
    urb.writeUInt32LE(flags, 8);
    // the buffer's address as two 32-bit halves (little-endian ABIs): no BigInt per URB
    const at = buffer.length > 0 ? this.c.address(buffer) : 0;
    urb.writeUInt32LE(at % 0x1_0000_0000, 16);
    urb.writeUInt32LE(Math.floor(at / 0x1_0000_0000), 20);
    urb.writeInt32LE(buffer.length, 24);
    urb.writeInt32LE(count, 36);
    for (let i = 0; i < count; i++) urb.writeUInt32LE(lengths[i]!, URB_SIZE + DESC_SIZE * i);
    // REAPURBNDELAY gives back the address of the struct we submitted: the URB's key
    const key = this.c.address(urb);
    const r = this.gone ? -ENODEV : this.call(SUBMITURB, urb);
    if (r !== 0) {
      listener.completed({ status: r, actualLength: 0, buffer, packets: lengths.map(() => ({ actualLength: 0, status: r })), startFrame: 0, cancelled: false });
      return NOT_PENDING;
    }
    const entry = new Pending(this, key, urb, buffer, count, listener);
    this.pending.set(key, entry);
    this.pump();
    return entry;
  }

  /** Pending.cancel(): USBDEVFS_DISCARDURB, once, while it is pending. */
  discard(entry: Pending): void {
    if (this.pending.get(entry.key) !== entry || entry.discarded) return;
    entry.discarded = true;
    // EINVAL: it completed meanwhile and waits to be reaped; it is then answered as completed
    this.call(DISCARDURB, entry.urb);
  }

  /**
   * Let the caller's poll() loop (shared/fd-loop.ts) watch the fd instead of a poll() of our own
   * on koffi's worker thread: completions are reaped in the same loop that moves the link's
   * bytes, with no thread between. Call before the first URB.
   */
  pollBy(loop: { watch(w: FdWatch): void }): void {
    this.polledBy = true;
    loop.watch({
      fd: this.fd,
      events: POLLOUT,
      wants: () => this.pending.size > 0 && this.fd >= 0,
      ready: (revents) => {
        this.reap();
        if ((revents & (POLLERR | POLLHUP)) !== 0) this.failAll(-ENODEV);
      },
    });
  }

  /** Keep one poll() in flight on a worker thread while any URB is (unless a loop of the caller's polls the fd). */
  private pump(): void {
    if (this.polledBy || this.pumping !== undefined || this.pending.size === 0 || this.fd < 0) return;
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
    const out = this.reaped;
    for (;;) {
      const r = this.call(REAPURBNDELAY, out);
      if (r === -EAGAIN) return;
      if (r !== 0) {
        if (r === -ENODEV) this.failAll(-ENODEV);
        return;
      }
      const key = out.readUInt32LE(0) + out.readUInt32LE(4) * 0x1_0000_0000;
      const e = this.pending.get(key);
      if (e === undefined) continue;
      this.pending.delete(key);
      const u = e.urb;
      const packets: UsbfsCompletion["packets"] = e.count === 0 ? NO_PACKETS : [];
      for (let i = 0; i < e.count; i++) packets.push({ actualLength: u.readUInt32LE(URB_SIZE + DESC_SIZE * i + 4), status: u.readInt32LE(URB_SIZE + DESC_SIZE * i + 8) });
      const status = u.readInt32LE(4);
      e.listener.completed({ status, actualLength: u.readInt32LE(28), buffer: e.buffer, packets, startFrame: u.readInt32LE(32), cancelled: e.discarded && status !== 0 });
    }
  }

  /** The device is gone: what is still pending will never be reaped. */
  private failAll(status: number): void {
    this.gone = true;
    for (const [k, e] of this.pending) {
      this.pending.delete(k);
      e.listener.completed({ status, actualLength: 0, buffer: e.buffer, packets: Array.from({ length: e.count }, () => ({ actualLength: 0, status })), startFrame: 0, cancelled: false });
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
