/**
 * How long a counter of activity (the client's chunks) has stood still, without a clock read per
 * event: the first look that sees a new count starts the quiet time. So the answer is at most one
 * polling interval late — fine for the question it serves (is a vhci port silent for seconds?).
 */
export class IdleClock {
  private seen = { count: -1, at: 0 };

  constructor(now = Date.now()) {
    this.seen.at = now;
  }

  /** Milliseconds since the first look at which the count was `count`. */
  idleMs(count: number, now = Date.now()): number {
    if (this.seen.count !== count) this.seen = { count, at: now };
    return now - this.seen.at;
  }
}
