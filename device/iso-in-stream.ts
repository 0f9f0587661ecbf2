/**
 * A paced isochronous IN endpoint, as a device's frames go by: each packet of an iso URB takes
 * one service interval (1 ms frame at full speed, 125 µs microframe at high speed), so a URB of
 * N packets completes N intervals after the one before it, whatever the host does. When no URB
 * covers an interval (the host submits late, or stopped) that interval's data is lost, as on a
 * real bus: the stream's clock is the wall clock, not the host. The content of each packet is
 * the model's (`fill`), from the absolute interval number since the stream started, so a
 * receiver can tell what was lost from what was reordered.
 */
import { Errno } from "../protocol/constants.js";
import type { CmdSubmit } from "../protocol/messages.js";
import type { UrbHandle, UrbResult } from "./urb-device.js";

/** Time for the models: real by default, a manual one in tests (no timed assertions). */
export interface Clock {
  /** milliseconds, monotonic */
  now(): number;
  after(ms: number, fn: () => void): { clear(): void };
}

export const realClock: Clock = {
  now: () => performance.now(),
  after(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    return { clear: () => clearTimeout(t) };
  },
};

/** One packet's content: the bytes for service interval `interval` (at most `room` of them). */
export type IsoFill = (interval: number, room: number) => Buffer;

interface Queued {
  cmd: CmdSubmit;
  /** absolute interval of its first packet */
  first: number;
  /** when it completes (clock ms) */
  due: number;
  resolve: (r: UrbResult) => void;
}

export interface IsoInStats {
  urbs: number;
  packets: number;
  bytes: number;
  /** intervals no URB was there for (data lost) */
  lostIntervals: number;
}

export class IsoInStream {
  readonly stats: IsoInStats = { urbs: 0, packets: 0, bytes: 0, lostIntervals: 0 };
  private readonly queue: Queued[] = [];
  private epoch: number | undefined;
  /** the interval the next submitted URB starts at */
  private next = 0;
  private timer: { clear(): void } | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly fill: IsoFill,
    private readonly clock: Clock = realClock,
  ) {}

  /** The interval the wall clock is in now. */
  private current(): number {
    return this.epoch === undefined ? 0 : Math.floor((this.clock.now() - this.epoch) / this.intervalMs);
  }

  submit(cmd: CmdSubmit): UrbHandle {
    const n = cmd.isoPackets?.length ?? 0;
    if (this.epoch === undefined) this.epoch = this.clock.now();
    // ISO_ASAP on a real HCD: the first free frame after what is queued; frames that went by
    // with nothing queued are lost
    const now = this.current();
    if (this.queue.length === 0 && this.next < now) {
      this.stats.lostIntervals += now - this.next;
      this.next = now;
    }
    let entry!: Queued;
    const result = new Promise<UrbResult>((resolve) => (entry = { cmd, first: this.next, due: this.epoch! + (this.next + n) * this.intervalMs, resolve }));
    this.next += n;
    this.queue.push(entry);
    if (this.queue.length === 1) this.arm();
    return {
      result,
      cancel: () => {
        const i = this.queue.indexOf(entry);
        if (i < 0) return;
        this.queue.splice(i, 1);
        entry.resolve({ status: Errno.ECONNRESET, cancelled: true });
        if (i === 0) this.arm();
      },
    };
  }

  /** Stop: every URB still queued ends with `status` (e.g. -ESHUTDOWN when the device goes). */
  stop(status: number = Errno.ESHUTDOWN): void {
    this.timer?.clear();
    this.timer = undefined;
    for (const q of this.queue.splice(0)) q.resolve({ status });
    this.epoch = undefined;
    this.next = 0;
  }

  get queued(): number {
    return this.queue.length;
  }

  private arm(): void {
    this.timer?.clear();
    this.timer = undefined;
    const head = this.queue[0];
    if (head === undefined) return;
    this.timer = this.clock.after(head.due - this.clock.now(), () => this.completeDue());
  }

  private completeDue(): void {
    this.timer = undefined;
    const now = this.clock.now();
    while (this.queue.length > 0 && this.queue[0]!.due <= now) this.complete(this.queue.shift()!);
    this.arm();
  }

  private complete(q: Queued): void {
    const packets = q.cmd.isoPackets ?? [];
    const data = Buffer.alloc(q.cmd.transferBufferLength);
    const results = packets.map((p, i) => {
      const bytes = this.fill(q.first + i, p.length);
      const n = bytes.copy(data, p.offset, 0, Math.min(bytes.length, p.length));
      this.stats.bytes += n;
      return { actualLength: n, status: 0 };
    });
    this.stats.urbs++;
    this.stats.packets += packets.length;
    q.resolve({ status: 0, data, isoPackets: results, startFrame: q.first & 0x7ff });
  }
}
