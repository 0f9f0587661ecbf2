/**
 * Buffers cut from a few large ones: one allocation (one ArrayBuffer for V8 to track and
 * collect) per slab's worth of bytes handed out instead of one per buffer. What is cut out is
 * never handed out again: a slab is freed by the collector once no view of it is left, so what
 * stays allocated is bounded by the slabs callers still hold a view of (a URB pending for hours,
 * an interrupt IN waiting for a key press, keeps its whole slab: at most one slab per such URB).
 * For the userspace backend's per-URB buffers (an IN URB's room for its data, its struct
 * usbdevfs_urb): measured natively, a fresh Buffer per URB put the collector at a third of the
 * URB server's time.
 */
export class Slab {
  private slab: Buffer | undefined;
  private used = 0;

  /**
   * @param size bytes per slab; a request above a quarter of it gets a Buffer of its own
   * @param align every view starts at a multiple of this (a power of two) from its slab's start
   */
  constructor(
    readonly size = 1 << 20,
    readonly align = 64,
  ) {}

  /** `n` bytes, uninitialised (callers fill them, or hand them to a device that does). */
  take(n: number): Buffer {
    if (n > this.size >> 2) return Buffer.allocUnsafeSlow(n);
    if (this.slab === undefined || this.used + n > this.size) {
      this.slab = Buffer.allocUnsafeSlow(this.size);
      this.used = 0;
    }
    const b = this.slab.subarray(this.used, this.used + n);
    this.used = (this.used + n + this.align - 1) & ~(this.align - 1);
    return b;
  }

  /** `n` zeroed bytes. */
  takeZeroed(n: number): Buffer {
    return this.take(n).fill(0);
  }
}
