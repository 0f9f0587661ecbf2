/**
 * What both stream decoders share: the chunk queue, the sticky error, the phase, and the
 * "never throw on short input" contract. A subclass implements `step()`, which returns a
 * message, or null when more bytes are needed, and throws ProtocolError on a violation.
 */
import { ByteQueue } from "./byte-queue.js";
import { ErrorCode, ProtocolError } from "./errors.js";
import { type DecodeLimits, resolveLimits } from "./limits.js";
import { UrbTable } from "./urb-table.js";
import { URB_HEADER_SIZE } from "./constants.js";

/** Stream phases: OP (TCP, usbipd), handshake (qrexec), URB, or closed (no more bytes allowed). */
export type Phase = "op" | "handshake" | "urb" | "closed";

export interface StreamDecoderOptions {
  /** Table of outstanding URBs shared by the client- and server-stream decoders of one link. */
  table?: UrbTable;
  limits?: Partial<DecodeLimits>;
}

export abstract class StreamDecoder<M> {
  protected readonly q = new ByteQueue();
  readonly table: UrbTable;
  readonly limits: DecodeLimits;
  protected _phase: Phase;
  private readonly initialPhase: Phase;
  private _error: ProtocolError | null = null;
  private _messageOffset = 0;
  private _count = 0;
  /**
   * set by step() for a CMD_SUBMIT / RET_SUBMIT whose header is canonical (see canonicalHeader):
   * the buffer holding it and where it starts there; the view is made only when asked for (the
   * URB server never asks: one view fewer per URB). Neither a pushed chunk nor peek's copy is
   * written again, so the bytes stay until the view is made.
   */
  protected _canonicalHeader: Buffer | undefined;
  protected _canonicalAt = 0;

  protected constructor(phase: Phase, opts: StreamDecoderOptions) {
    this.limits = resolveLimits(opts.limits);
    this.table = opts.table ?? new UrbTable(this.limits.maxOutstanding, this.limits.maxOutstandingBytes);
    this._phase = phase;
    this.initialPhase = phase;
  }

  get phase(): Phase {
    return this._phase;
  }
  /** The violation that stopped this stream, if any (sticky until reset()). */
  get error(): ProtocolError | null {
    return this._error;
  }
  /** Absolute stream offset of the message last returned by next(). */
  get messageOffset(): number {
    return this._messageOffset;
  }
  /**
   * The 48 header bytes of the CMD_SUBMIT or RET_SUBMIT last returned by next(), as received,
   * when they are byte for byte what encodeSubmitHeader writes for that message (every field
   * is kept as received but number_of_packets, written as the descriptor count, and a RET's
   * 8 padding bytes, written as zeros): a relay may forward them instead of re-encoding.
   * undefined for any other message, or when the header is not canonical (e.g. 0xffffffff
   * packets from a non-Linux client): then encode.
   */
  get canonicalHeader(): Buffer | undefined {
    return this._canonicalHeader?.subarray(this._canonicalAt, this._canonicalAt + URB_HEADER_SIZE);
  }
  /** Messages decoded so far. */
  get count(): number {
    return this._count;
  }
  /** Bytes received but not yet decoded. */
  get buffered(): number {
    return this.q.length;
  }
  /** Absolute offset of the next undecoded byte. */
  get offset(): number {
    return this.q.offset;
  }

  /** Add bytes. The chunk is kept (not copied): payload views point into it; don't modify it. */
  push(chunk: Buffer): void {
    if (this._error === null) this.q.push(chunk);
  }

  /** The next whole message, or null when more bytes are needed or the stream has failed (see `error`). */
  next(): M | null {
    if (this._error !== null || this.q.length === 0) return null;
    const start = this.q.offset;
    this._canonicalHeader = undefined;
    try {
      const m = this.step();
      if (m !== null) {
        this._messageOffset = start;
        this._count++;
      }
      return m;
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      this._error = e;
      return null;
    }
  }

  /** Push a chunk and collect every whole message it completes. */
  feed(chunk: Buffer): M[] {
    this.push(chunk);
    const out: M[] = [];
    for (let m = this.next(); m !== null; m = this.next()) out.push(m);
    return out;
  }

  /**
   * The stream has ended: returns the error that ends it, if any — the sticky error, or
   * TRUNCATED when bytes of an incomplete message are left.
   */
  end(): ProtocolError | null {
    if (this._error === null && this.q.length > 0) {
      this._error = new ProtocolError(ErrorCode.TRUNCATED, this.q.offset, `stream ends inside a message (${this.q.length} bytes of an incomplete message left)`);
    }
    return this._error;
  }

  /** Start over on a new stream (the shared table is left alone). */
  reset(phase: Phase = this.initialPhase): void {
    this.q.reset();
    this._error = null;
    this._phase = phase;
    this._messageOffset = 0;
    this._count = 0;
    this._canonicalHeader = undefined;
    this.onReset();
  }

  protected onReset(): void {}

  protected abstract step(): M | null;

  protected trailing(): never {
    throw new ProtocolError(ErrorCode.TRAILING_DATA, this.q.offset, "no bytes may follow the last message of this exchange (usbipd answers one OP request per connection)");
  }
}
