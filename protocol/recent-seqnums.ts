/**
 * The seqnums of URBs answered lately, bounded (oldest forgotten first): a CMD_UNLINK may name a
 * URB whose RET_SUBMIT crossed it on the wire, and that is a known seqnum, not a forged one.
 */
export class RecentSeqnums {
  private readonly set = new Set<number>();
  constructor(readonly capacity = 4096) {}

  add(seqnum: number): void {
    this.set.add(seqnum);
    if (this.set.size > this.capacity) this.set.delete(this.set.values().next().value as number);
  }

  has(seqnum: number): boolean {
    return this.set.has(seqnum);
  }
}
