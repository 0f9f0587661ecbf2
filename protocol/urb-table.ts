/**
 * The table of outstanding URBs of one connection, keyed by seqnum (an opaque u32: vhci's
 * counter is shared by all ports of a root hub, so seqnums are neither contiguous nor, after
 * wrap-around, monotonic). Filled from the client stream (CMD_*), drained by the server
 * stream (RET_*). RET_SUBMIT carries direction/ep/devid as 0, so framing it needs this table.
 *
 * Each CMD_SUBMIT is answered by exactly one of RET_SUBMIT(seqnum) or, after a CMD_UNLINK
 * caught it in flight, RET_UNLINK(unlink seqnum) — never both, never twice.
 */
import type { Direction } from "./constants.js";
import { DEFAULT_LIMITS } from "./limits.js";
import type { IsoPacket } from "./messages.js";

export interface SubmittedUrb {
  seqnum: number;
  devid: number;
  direction: Direction;
  ep: number;
  transferFlags: number;
  transferBufferLength: number;
  /** ISO endpoint: descriptors follow in both directions. */
  iso: boolean;
  /** ISO packet count as submitted (0 for non-ISO). */
  numberOfPackets: number;
  /** ISO descriptors as submitted (offset/length), for the relay's checks. */
  isoPackets: IsoPacket[] | undefined;
  /** The setup packet (control endpoint), for the relay's checks. */
  setup: Buffer | undefined;
}

export interface PendingUnlink {
  seqnum: number;
  devid: number;
  unlinkSeqnum: number;
}

export type AddResult = "ok" | "duplicate" | "full" | "bytes";

export class UrbTable {
  private readonly submits = new Map<number, SubmittedUrb>();
  private readonly unlinks = new Map<number, PendingUnlink>();

  private bytes = 0;

  /**
   * @param maxOutstanding cap on submits + unlinks in flight (default: protocol/limits.ts).
   * @param maxOutstandingBytes cap on the transfer_buffer_length sum of the submits in flight (default: protocol/limits.ts).
   */
  constructor(
    readonly maxOutstanding = DEFAULT_LIMITS.maxOutstanding,
    readonly maxOutstandingBytes = DEFAULT_LIMITS.maxOutstandingBytes,
  ) {}

  /** Sum of transfer_buffer_length over the submits in flight. */
  get outstandingBytes(): number {
    return this.bytes;
  }

  get size(): number {
    return this.submits.size + this.unlinks.size;
  }
  get submitCount(): number {
    return this.submits.size;
  }
  get unlinkCount(): number {
    return this.unlinks.size;
  }

  private check(seqnum: number): AddResult {
    if (this.submits.has(seqnum) || this.unlinks.has(seqnum)) return "duplicate";
    if (this.size >= this.maxOutstanding) return "full";
    return "ok";
  }

  /** What addSubmit would answer for this seqnum and length, without adding anything. */
  canAddSubmit(seqnum: number, transferBufferLength: number): AddResult {
    const r = this.check(seqnum);
    if (r !== "ok") return r;
    return this.bytes + transferBufferLength > this.maxOutstandingBytes ? "bytes" : "ok";
  }

  addSubmit(urb: SubmittedUrb): AddResult {
    const r = this.canAddSubmit(urb.seqnum, urb.transferBufferLength);
    if (r !== "ok") return r;
    this.submits.set(urb.seqnum, urb);
    this.bytes += urb.transferBufferLength;
    return r;
  }

  addUnlink(u: PendingUnlink): AddResult {
    const r = this.check(u.seqnum);
    if (r === "ok") this.unlinks.set(u.seqnum, u);
    return r;
  }

  /** The seqnums of every submit and unlink in flight. */
  seqnums(): number[] {
    return [...this.submits.keys(), ...this.unlinks.keys()];
  }

  getSubmit(seqnum: number): SubmittedUrb | undefined {
    return this.submits.get(seqnum);
  }
  getUnlink(seqnum: number): PendingUnlink | undefined {
    return this.unlinks.get(seqnum);
  }

  /** Mark a submit answered by its RET_SUBMIT. */
  answerSubmit(seqnum: number): SubmittedUrb | undefined {
    const u = this.submits.get(seqnum);
    if (u !== undefined) {
      this.submits.delete(seqnum);
      this.bytes -= u.transferBufferLength;
    }
    return u;
  }

  /**
   * Mark an unlink answered by RET_UNLINK. If its victim is still outstanding, the RET_UNLINK
   * answers it too (it will get no RET_SUBMIT); `victim` is then returned.
   */
  answerUnlink(seqnum: number): { unlink: PendingUnlink; victim: SubmittedUrb | undefined } | undefined {
    const unlink = this.unlinks.get(seqnum);
    if (unlink === undefined) return undefined;
    this.unlinks.delete(seqnum);
    const victim = this.submits.get(unlink.unlinkSeqnum);
    if (victim !== undefined) {
      this.submits.delete(unlink.unlinkSeqnum);
      this.bytes -= victim.transferBufferLength;
    }
    return { unlink, victim };
  }

  clear(): void {
    this.bytes = 0;
    this.submits.clear();
    this.unlinks.clear();
  }
}
