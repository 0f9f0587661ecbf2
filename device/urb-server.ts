/**
 * Serves one device's URBs over a USB/IP stream (the backend side of the URB phase, what
 * usbip-host does in the kernel): CMD_SUBMIT → device.submit(), RET_SUBMIT in completion order;
 * CMD_UNLINK really cancels the transfer in flight:
 *  - cancelled before it completed → RET_UNLINK(-ECONNRESET) and no RET_SUBMIT (stub_complete)
 *  - completed before the cancel took effect → RET_SUBMIT, then RET_UNLINK(0)
 *  - already answered (or unknown) → RET_UNLINK(0) at once (stub_recv_cmd_unlink)
 * Input from the frontend is untrusted: the stream decoder and the relay's CMD_* rules
 * (devid, endpoint exists with that direction/type, control wLength, iso counts) run before a
 * device sees anything; the first violation ends the session with the rule and byte offset.
 * A frontend that stops reading its answers stops being read (more than STREAM_BUFFER bytes
 * waiting in the output pause the input until it drains): what waits for it stays bounded.
 */
import type { ByteSink, ByteSource } from "../shared/byte-stream.js";
import { ClientStreamDecoder } from "../protocol/client-decoder.js";
import { Direction, Errno, TransferFlag } from "../protocol/constants.js";
import { encode } from "../protocol/encoder.js";
import { ProtocolError, WireCode } from "../protocol/errors.js";
import type { CmdSubmit, CmdUnlink, RetSubmit, ServerMessage } from "../protocol/messages.js";
import { checkCmdSubmit, checkCmdUnlink, type DeviceView } from "../protocol/relay-rules.js";
import { RecentSeqnums } from "../protocol/recent-seqnums.js";
import { pauseWhileBacklogged } from "../shared/backpressure.js";
import type { UrbDevice, UrbHandle, UrbResult } from "./urb-device.js";

/** the OUT payload of an IN URB and the data of an answer without any: one shared empty buffer */
const EMPTY = Buffer.alloc(0);

export interface UrbServerStats {
  submitted: number;
  completed: number;
  unlinked: number;
  inBytes: number;
  outBytes: number;
  /** most URBs in flight at once */
  maxInFlight: number;
}

export interface UrbServerResult {
  reason: "closed" | "violation" | "stopped";
  violation?: ProtocolError;
  stats: UrbServerStats;
}

interface InFlight {
  cmd: CmdSubmit;
  handle: UrbHandle;
  /** its endpoint's queue (see `queues`) */
  key: number;
  /** the device's result, once it settled (it is answered when every earlier URB of its endpoint is) */
  result?: UrbResult;
  /** seqnum of the CMD_UNLINK that asked to cancel it */
  unlinkedBy?: number;
}


export class UrbServer {
  readonly stats: UrbServerStats = { submitted: 0, completed: 0, unlinked: 0, inBytes: 0, outBytes: 0, maxInFlight: 0 };
  private readonly dec: ClientStreamDecoder;
  private readonly inflight = new Map<number, InFlight>();
  /** answered seqnums, so a late CMD_UNLINK for one of them is "known" */
  private readonly recent = new RecentSeqnums();
  /** the device as the CMD_* rules see it (made once: checked on every URB) */
  private readonly view: DeviceView;
  /** per endpoint (ep | dir << 4; 0 for the control endpoint): its URBs not yet answered, in submission order */
  private readonly queues = new Map<number, InFlight[]>();
  private finished = false;
  private resolveDone!: (r: UrbServerResult) => void;
  readonly done: Promise<UrbServerResult>;

  constructor(
    private readonly device: UrbDevice,
    private readonly input: ByteSource,
    private readonly output: ByteSink,
    private readonly opts: { prefix?: Buffer; onMessage?: (m: CmdSubmit | CmdUnlink | ServerMessage) => void } = {},
  ) {
    this.dec = new ClientStreamDecoder({ phase: "urb", endpointType: (ep, dir) => device.endpoint(ep, dir) });
    this.view = { devid: device.devid, endpoint: (ep, dir) => device.endpoint(ep, dir as Direction), isoPacketLimit: (ep, dir) => device.isoPacketLimit?.(ep, dir as Direction) };
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  start(): void {
    this.input.on("data", (c: Buffer) => this.feed(c));
    this.input.on("end", () => void this.finish({ reason: "closed", stats: this.stats }));
    this.input.on("error", () => void this.finish({ reason: "closed", stats: this.stats }));
    this.output.on("error", () => void this.finish({ reason: "closed", stats: this.stats }));
    if (this.opts.prefix && this.opts.prefix.length > 0) this.feed(this.opts.prefix);
    this.input.resume();
  }

  stop(): Promise<UrbServerResult> {
    void this.finish({ reason: "stopped", stats: this.stats });
    return this.done;
  }

  private feed(chunk: Buffer): void {
    if (this.finished) return;
    this.dec.push(chunk);
    try {
      for (let m = this.dec.next(); m !== null; m = this.dec.next()) {
        const at = this.dec.messageOffset;
        if (m.kind === "CMD_SUBMIT") this.submit(m, at);
        else if (m.kind === "CMD_UNLINK") this.unlink(m, at);
        else throw new ProtocolError(WireCode.UNEXPECTED_OP, at, `${m.kind} in the URB phase`);
      }
      if (this.dec.error) throw this.dec.error;
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      void this.finish({ reason: "violation", violation: e, stats: this.stats });
    }
    this.throttle();
  }

  /** Pause the input while more than STREAM_BUFFER bytes wait in the output (relay/backpressure.ts). */
  private throttle(): void {
    if (!this.finished) pauseWhileBacklogged(this.input, this.output);
  }

  private submit(cmd: CmdSubmit, at: number): void {
    checkCmdSubmit(cmd, this.view, at);
    this.opts.onMessage?.(cmd);
    const out = cmd.direction === Direction.OUT ? (cmd.payload.length === 1 ? cmd.payload[0]! : Buffer.concat(cmd.payload)) : EMPTY;
    const handle = this.device.submit(cmd, out);
    // An HCD completes the URBs of one endpoint in submission order (usbtest's queued-control
    // case checks it): a transfer that fails at once must not overtake earlier ones.
    const key = cmd.ep === 0 ? 0 : cmd.ep | (cmd.direction << 4); // ep 0 is one pipe for both directions
    const entry: InFlight = { cmd, handle, key };
    this.inflight.set(cmd.seqnum, entry);
    this.stats.submitted++;
    if (this.inflight.size > this.stats.maxInFlight) this.stats.maxInFlight = this.inflight.size;
    let queue = this.queues.get(key);
    if (queue === undefined) this.queues.set(key, (queue = []));
    queue.push(entry);
    if (handle.listen !== undefined) handle.listen((r) => this.settled(entry, r));
    else
      handle.result.then(
        (r) => this.settled(entry, r),
        () => this.settled(entry, { status: Errno.EPROTO }),
      );
  }

  /** `e`'s result is in: answer it and the settled URBs after it, unless an earlier one of its endpoint is still out. */
  private settled(e: InFlight, r: UrbResult): void {
    e.result = r;
    const queue = this.queues.get(e.key)!;
    while (queue.length > 0 && queue[0]!.result !== undefined) {
      const head = queue.shift()!;
      this.completed(head, head.result!);
    }
    if (queue.length === 0) this.queues.delete(e.key);
  }

  private completed(e: InFlight, r: UrbResult): void {
    this.inflight.delete(e.cmd.seqnum);
    this.dec.table.answerSubmit(e.cmd.seqnum);
    this.recent.add(e.cmd.seqnum);
    if (this.finished) return;
    if (e.unlinkedBy !== undefined && r.cancelled) {
      this.stats.unlinked++;
      this.dec.table.answerUnlink(e.unlinkedBy);
      this.send({ kind: "RET_UNLINK", seqnum: e.unlinkedBy, devid: 0, direction: 0, ep: 0, status: Errno.ECONNRESET });
      return;
    }
    this.stats.completed++;
    if (e.cmd.isoPackets !== undefined) this.sendIso(e, r);
    else this.sendSubmit(e, r);
    if (e.unlinkedBy !== undefined) {
      // the cancel came too late: the URB completed and was answered; the unlink finds nothing
      this.dec.table.answerUnlink(e.unlinkedBy);
      this.send({ kind: "RET_UNLINK", seqnum: e.unlinkedBy, devid: 0, direction: 0, ep: 0, status: 0 });
    }
  }

  private sendSubmit(e: InFlight, r: UrbResult): void {
    const isIn = e.cmd.direction === Direction.IN;
    const data = isIn ? (r.data ?? EMPTY).subarray(0, e.cmd.transferBufferLength) : undefined;
    // what an HCD does: a short IN transfer with URB_SHORT_NOT_OK completes with -EREMOTEIO
    const status = r.status === 0 && isIn && data!.length < e.cmd.transferBufferLength && (e.cmd.transferFlags & TransferFlag.SHORT_NOT_OK) !== 0 ? Errno.EREMOTEIO : r.status;
    const actualLength = isIn ? data!.length : r.status === 0 ? Math.min(r.actualLength ?? e.cmd.transferBufferLength, e.cmd.transferBufferLength) : (r.actualLength ?? 0);
    if (isIn) this.stats.inBytes += actualLength;
    else this.stats.outBytes += actualLength;
    this.send({ kind: "RET_SUBMIT", seqnum: e.cmd.seqnum, devid: 0, direction: 0, ep: 0, status, actualLength, startFrame: 0, numberOfPackets: 0, errorCount: 0, payload: data && data.length > 0 ? [data] : [] });
  }

  private sendIso(e: InFlight, r: UrbResult): void {
    const ret = isoRetSubmit(e.cmd, r);
    if (e.cmd.direction === Direction.IN) this.stats.inBytes += ret.actualLength;
    else this.stats.outBytes += ret.actualLength;
    this.send(ret);
  }

  private unlink(m: CmdUnlink, at: number): void {
    checkCmdUnlink(m, this.view, (s) => this.inflight.has(s) || this.recent.has(s), at);
    this.opts.onMessage?.(m);
    const victim = this.inflight.get(m.unlinkSeqnum);
    if (victim !== undefined && victim.unlinkedBy === undefined) {
      victim.unlinkedBy = m.seqnum;
      victim.handle.cancel();
      return;
    }
    this.dec.table.answerUnlink(m.seqnum);
    this.send({ kind: "RET_UNLINK", seqnum: m.seqnum, devid: 0, direction: 0, ep: 0, status: 0 });
  }

  private send(m: ServerMessage): void {
    this.opts.onMessage?.(m);
    const parts = encode(m);
    if (parts.length === 1) {
      this.output.write(parts[0]!);
      this.throttle();
      return;
    }
    // header + payload (+ ISO descriptors) in one writev: one syscall per RET, not one per part
    this.output.cork();
    for (const b of parts) this.output.write(b);
    this.output.uncork();
    this.throttle();
  }

  private async finish(r: UrbServerResult): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    // cancel what is in flight and let it settle (bounded), so the device is idle when released
    const pending = [...this.inflight.values()];
    for (const e of pending) e.handle.cancel();
    await Promise.race([Promise.allSettled(pending.map((e) => e.handle.result)), new Promise((res) => setTimeout(res, 2000).unref())]);
    if (r.reason === "violation") this.output.destroy();
    else this.output.end();
    this.input.destroy();
    this.resolveDone(r);
  }
}

/**
 * An iso RET_SUBMIT, as stub_tx sends it: every submitted descriptor back (offset, length as
 * submitted; actual_length and status from the device), actual_length = their sum, error_count
 * = packets with a status, and for IN the packets' bytes packed in order, gaps removed
 * (vhci's usbip_pad_iso moves them back to their offsets).
 */
export function isoRetSubmit(cmd: CmdSubmit, r: UrbResult): RetSubmit {
  const sent = cmd.isoPackets ?? [];
  const isIn = cmd.direction === Direction.IN;
  const data = r.data ?? EMPTY;
  const packets = sent.map((p, i) => {
    const got = r.isoPackets?.[i];
    // a packet the device said nothing of moved nothing (-EXDEV: "not transferred", as usb_submit_urb presets it)
    const status = got?.status ?? (r.status === 0 ? Errno.EXDEV : 0);
    const room = isIn ? Math.max(0, Math.min(p.length, data.length - p.offset)) : p.length;
    return { offset: p.offset, length: p.length, actualLength: Math.max(0, Math.min(got?.actualLength ?? 0, room)), status };
  });
  const payload = isIn ? packets.filter((p) => p.actualLength > 0).map((p) => data.subarray(p.offset, p.offset + p.actualLength)) : [];
  const actualLength = packets.reduce((n, p) => n + p.actualLength, 0);
  const errorCount = packets.filter((p) => p.status !== 0).length;
  return { kind: "RET_SUBMIT", seqnum: cmd.seqnum, devid: 0, direction: 0, ep: 0, status: r.status, actualLength, startFrame: r.startFrame ?? 0, numberOfPackets: packets.length, errorCount, payload, isoPackets: packets };
}
