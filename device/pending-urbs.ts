/**
 * IN URBs a device model cannot answer yet (a keyboard with no keystroke, a disk before its data
 * phase), in arrival order. Each is a handle whose cancel() (CMD_UNLINK) takes it out of the
 * queue and settles it as cancelled, as an HCD gives back an unlinked URB.
 */
import { Errno } from "../protocol/constants.js";
import type { UrbHandle, UrbResult } from "./urb-device.js";

interface Entry<C> {
  ctx: C;
  resolve: (r: UrbResult) => void;
}

export class PendingUrbs<C> {
  private readonly q: Entry<C>[] = [];

  get length(): number {
    return this.q.length;
  }

  /** Queue one URB with its context; `onQueued` runs once it is in the queue (to serve at once). */
  add(ctx: C, onQueued: () => void): UrbHandle {
    let entry!: Entry<C>;
    const result = new Promise<UrbResult>((resolve) => (entry = { ctx, resolve }));
    this.q.push(entry);
    onQueued();
    return {
      result,
      cancel: () => {
        const i = this.q.indexOf(entry);
        if (i >= 0) {
          this.q.splice(i, 1);
          entry.resolve({ status: Errno.ECONNRESET, cancelled: true });
        }
      },
    };
  }

  /** The oldest URB's context, without taking it. */
  peek(): C | undefined {
    return this.q[0]?.ctx;
  }

  /** Answer the oldest URB. */
  answer(r: UrbResult): void {
    this.q.shift()?.resolve(r);
  }

  /** Answer every URB with `status` (the device goes away). */
  failAll(status: number): void {
    for (const e of this.q.splice(0)) e.resolve({ status });
  }
}
