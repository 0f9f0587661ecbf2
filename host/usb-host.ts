/**
 * A minimal USB host over the USB/IP protocol (the client side of the URB phase, what vhci-hcd
 * does in the kernel), for `probe` and `demo`: submit control/bulk/interrupt URBs, await their
 * RET_SUBMIT, unlink. Replies are decoded with the strict server-stream decoder against the
 * table of what was submitted, so a misbehaving backend is an error, not a wrong answer.
 */
import type { Readable, Writable } from "node:stream";
import { Direction, TransferFlag } from "../protocol/constants.js";
import { encode } from "../protocol/encoder.js";
import { ProtocolError, UsbipError, PeerDataError, formatViolation, RuntimeCode, WireCode } from "../protocol/errors.js";
import type { CmdSubmit, RetSubmit, RetUnlink } from "../protocol/messages.js";
import { ServerStreamDecoder } from "../protocol/server-decoder.js";
import { UrbTable } from "../protocol/urb-table.js";
import { encodeSetup, type Setup } from "../usb/setup.js";

export interface HostStats {
  urbs: number;
  inBytes: number;
  outBytes: number;
}

type Waiter = { resolve: (m: RetSubmit | RetUnlink) => void; reject: (e: Error) => void };

export class UsbHost {
  readonly stats: HostStats = { urbs: 0, inBytes: 0, outBytes: 0 };
  private readonly table = new UrbTable();
  private readonly dec = new ServerStreamDecoder({ table: this.table, phase: "urb" });
  private readonly waiting = new Map<number, Waiter>();
  private seq = 0;
  private failure: Error | undefined;

  constructor(
    readonly devid: number,
    input: Readable,
    private readonly output: Writable,
    prefix?: Buffer,
  ) {
    input.on("data", (c: Buffer) => this.feed(c));
    input.on("end", () => this.fail(new UsbipError(RuntimeCode.CLOSED, "the device side closed the connection")));
    input.on("error", (e: Error) => this.fail(new UsbipError(RuntimeCode.CLOSED, `connection error: ${e.message}`)));
    if (prefix && prefix.length > 0) this.feed(prefix);
    input.resume();
  }

  private feed(c: Buffer): void {
    if (this.failure) return;
    this.dec.push(c);
    try {
      for (let m = this.dec.next(); m !== null; m = this.dec.next()) {
        if (m.kind !== "RET_SUBMIT" && m.kind !== "RET_UNLINK") throw new ProtocolError(WireCode.UNEXPECTED_OP, this.dec.messageOffset, `${m.kind} in the URB phase`);
        const w = this.waiting.get(m.seqnum);
        this.waiting.delete(m.seqnum);
        if (m.kind === "RET_SUBMIT") this.stats.inBytes += m.actualLength * (this.dec.lastSubmit?.direction === Direction.IN ? 1 : 0);
        w?.resolve(m);
        // a RET_UNLINK that cancelled its victim answers the victim's waiter too
        if (m.kind === "RET_UNLINK" && this.dec.lastSubmit && m.status !== 0) {
          const v = this.waiting.get(this.dec.lastSubmit.seqnum);
          this.waiting.delete(this.dec.lastSubmit.seqnum);
          v?.resolve({ kind: "RET_SUBMIT", seqnum: this.dec.lastSubmit.seqnum, devid: 0, direction: 0, ep: 0, status: m.status, actualLength: 0, startFrame: 0, numberOfPackets: 0, errorCount: 0, payload: [] });
        }
      }
      if (this.dec.error) throw this.dec.error;
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      this.fail(new PeerDataError(e.code, `the device side sent malformed data: ${formatViolation(e)}`));
    }
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0 || 1;
    return this.seq;
  }

  /** Submit one URB; resolves with its RET_SUBMIT (status may be an error). */
  submit(ep: number, direction: Direction, length: number, opts: { setup?: Setup; out?: Buffer; flags?: number; onSeqnum?: (s: number) => void; isoLengths?: number[] } = {}): Promise<RetSubmit> {
    if (this.failure) return Promise.reject(this.failure);
    const seqnum = this.nextSeq();
    const out = direction === Direction.OUT ? (opts.out ?? Buffer.alloc(0)) : undefined;
    // an iso URB: its packets back to back from offset 0, as snd-usb-audio and uvcvideo lay them out
    let offset = 0;
    const isoPackets = opts.isoLengths?.map((len) => ({ offset: (offset += len) - len, length: len, actualLength: 0, status: 0 }));
    const np = isoPackets?.length ?? 0;
    const cmd: CmdSubmit = {
      kind: "CMD_SUBMIT",
      seqnum,
      devid: this.devid,
      direction,
      ep,
      transferFlags: (opts.flags ?? 0) | (direction === Direction.IN ? TransferFlag.DIR_IN : 0) | (isoPackets ? TransferFlag.ISO_ASAP : 0),
      transferBufferLength: out ? out.length : isoPackets ? offset : length,
      startFrame: 0,
      numberOfPackets: np,
      interval: isoPackets ? 1 : 0,
      setup: opts.setup ? encodeSetup(opts.setup) : Buffer.alloc(8),
      payload: out && out.length > 0 ? [out] : [],
      ...(isoPackets ? { isoPackets } : {}),
    };
    this.table.addSubmit({ seqnum, devid: this.devid, direction, ep, transferFlags: cmd.transferFlags, transferBufferLength: cmd.transferBufferLength, iso: isoPackets !== undefined, numberOfPackets: np, isoPackets, setup: cmd.setup });
    const p = new Promise<RetSubmit | RetUnlink>((resolve, reject) => this.waiting.set(seqnum, { resolve, reject }));
    this.stats.urbs++;
    if (out) this.stats.outBytes += out.length;
    for (const b of encode(cmd)) this.output.write(b);
    opts.onSeqnum?.(seqnum);
    return p as Promise<RetSubmit>;
  }

  /** CMD_UNLINK for `victim`; resolves with the RET_UNLINK status. */
  unlink(victim: number): Promise<number> {
    if (this.failure) return Promise.reject(this.failure);
    const seqnum = this.nextSeq();
    this.table.addUnlink({ seqnum, devid: this.devid, unlinkSeqnum: victim });
    const p = new Promise<RetSubmit | RetUnlink>((resolve, reject) => this.waiting.set(seqnum, { resolve, reject }));
    for (const b of encode({ kind: "CMD_UNLINK", seqnum, devid: this.devid, direction: 0, ep: 0, unlinkSeqnum: victim })) this.output.write(b);
    return p.then((m) => m.status);
  }

  /** A control transfer on endpoint 0; IN data (or OUT `out`). */
  async control(setup: Setup, out?: Buffer): Promise<{ status: number; data: Buffer }> {
    const dirIn = (setup.bmRequestType & 0x80) !== 0;
    const r = await this.submit(0, dirIn ? Direction.IN : Direction.OUT, dirIn ? setup.wLength : 0, { setup: { ...setup, wLength: dirIn ? setup.wLength : (out?.length ?? 0) }, out });
    return { status: r.status, data: r.payload.length === 1 ? r.payload[0]! : Buffer.concat(r.payload) };
  }

  close(): void {
    this.fail(new UsbipError(RuntimeCode.CLOSED, "host closed"));
    this.output.end();
  }
}
