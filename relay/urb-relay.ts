/**
 * The validating URB relay, written once for both roles: CMD_* flow from the client side (vhci-hcd
 * in the frontend relay, the qrexec link in the backend relay) to the server side, RET_* back.
 * Every message is decoded, checked (stream decoders + protocol/relay-rules.ts), re-encoded
 * (so what reaches a kernel is well-formed by construction: e.g. number_of_packets 0 for non-ISO)
 * and written with its payload as views: the messages of one input chunk leave in one writev
 * (cork, uncork at the end of the chunk). Backpressure: relay/backpressure.ts.
 * On the first violation the relay logs the rule, seqnum and byte offset, stops forwarding and
 * tears both sides down: nothing malformed reaches either kernel.
 *
 * Cut-through: a RET_SUBMIT (IN data) or CMD_SUBMIT (OUT data) with more than CUT_THROUGH_MIN
 * payload bytes for a bulk or interrupt URB is forwarded as soon as its header has arrived and
 * passed every check (all of a non-ISO message's checks are on the header and the URB table; the
 * payload is opaque bytes), then its payload as it arrives, instead of after the whole message:
 * the receiver reads while the sender still sends. Control and ISO messages (descriptors to
 * screen, ISO descriptors after the payload) wait until they are whole. While a message is
 * passing this way nothing else is written to that side (a held unlink whose grace ends waits
 * for it). If a side ends inside such a message, the other sees a short message and then the
 * end of the connection — what it sees when its peer dies mid-message.
 *
 * Unlink hold (backend role): Linux's usbip-host (6.1) frees a URB in its completion path while
 * stub_recv_cmd_unlink() still walks it after dropping priv_lock — a use-after-free that a
 * CMD_UNLINK racing a completion triggers (general protection fault, seen with usbtest through
 * any relaying link). So a CMD_UNLINK is held for `unlinkGraceMs`: if the victim's RET_SUBMIT
 * comes back meanwhile, the relay answers RET_UNLINK(0) itself — exactly what the stub would say
 * for an already completed URB — and usbip-host never sees the unlink; otherwise it is forwarded.
 *
 * Unlink deadline (frontend role): vhci-hcd waits for the answer to its CMD_UNLINK without a
 * timeout, in usb_kill_urb, uninterruptibly: a backend that answers neither the URB nor its
 * unlink leaves the task that cancelled it stuck in the kernel until the device is detached. A
 * hostile USB VM can do that on purpose, and usbip-host does it by accident when the URB's
 * RET_SUBMIT was lost on the way: it queues the RET_UNLINK of an already completed URB without
 * waking its sender thread, so it goes out only with the next completion (6.12, 7.3; found by
 * fuzzing, docs/FUZZING.md). So when the victim is still unanswered `unlinkDeadlineMs` after its
 * unlink went out, the relay answers the client itself with RET_UNLINK(-ECONNRESET) — what the
 * backend says for a URB it cancelled — and drops the backend's late answers to both.
 *
 * Client hand-over (frontend role): when a vhci-hcd port never enumerates the device, the
 * importer gives the port up and attaches a new socketpair on another port without the backend
 * noticing (frontend/import-lifecycle.ts). `detachClient()` lets go of the old client streams;
 * the URBs that client left outstanding stay in the table (their answers must still be framed
 * and checked) and are dropped when they come — the new port's vhci-hcd never submitted them.
 * `attachClient()` gives the client side to the new streams, with a fresh decoder (a new stream).
 */
import { Direction } from "../protocol/constants.js";
import { EventEmitter } from "node:events";
import { Writable } from "node:stream";
import type { ByteSink, ByteSource } from "../shared/byte-stream.js";
import { ClientStreamDecoder, type EndpointType } from "../protocol/client-decoder.js";
import { ServerStreamDecoder } from "../protocol/server-decoder.js";
import { encode, encodeSubmitHeader } from "../protocol/encoder.js";
import { ProtocolError, WireCode } from "../protocol/errors.js";
import { type ClientMessage, type CmdSubmit, type CmdUnlink, type Message, type RetSubmit, type ServerMessage, skipPayload } from "../protocol/messages.js";
import { checkCmdSubmit, checkCmdUnlink, checkRetSubmit, checkRetUnlink, type DeviceView } from "../protocol/relay-rules.js";
import { UrbTable, type SubmittedUrb } from "../protocol/urb-table.js";
import { RecentSeqnums } from "../protocol/recent-seqnums.js";
import { pauseWhileBacklogged } from "../shared/backpressure.js";
import { IdleClock } from "./idle-clock.js";

export type RelayEnd = "client" | "server";

export interface RelayOptions {
  clientIn: ByteSource;
  clientOut: ByteSink;
  serverIn: ByteSource;
  serverOut: ByteSink;
  /** Backend role: the exported device (devid, endpoints); enables the CMD_* device checks. */
  device?: DeviceView;
  /** Backend role: how long a CMD_UNLINK is held (see above). Defaults to 0 (forward at once). */
  unlinkGraceMs?: number;
  /** Frontend role: how long a victim may stay unanswered after its unlink went out before the relay answers it (see above). Defaults to 0 (never). */
  unlinkDeadlineMs?: number;
  /** Bytes already read from the server side (after a handshake line), decoded first. */
  serverPrefix?: Buffer;
  /** An extra check on every control (endpoint 0) RET_SUBMIT before it is forwarded (e.g. the device policy); throw ProtocolError to refuse. */
  screen?: (msg: RetSubmit, urb: SubmittedUrb, at: number) => void;
  /** Called for every message that passes, with the side it came from (and, for RET_*, the CMD_SUBMIT it answers). */
  onMessage?: (from: RelayEnd, msg: Message, urb?: SubmittedUrb) => void;
}

export interface RelayViolation {
  from: RelayEnd;
  error: ProtocolError;
}

export interface RelayResult {
  reason: "client closed" | "server closed" | "violation" | "stopped";
  violation?: RelayViolation;
  stats: RelayStats;
}

export interface RelayStats {
  cmdSubmit: number;
  cmdUnlink: number;
  retSubmit: number;
  retUnlink: number;
  /** RET_UNLINKs the relay answered itself (unlink hold) */
  unlinksAnswered: number;
  /** RET_UNLINKs the relay answered itself because the backend left the victim unanswered past the deadline */
  unlinksTimedOut: number;
  /** the backend's answers that came after the deadline (dropped) */
  lateAnswersDropped: number;
  payloadBytes: number;
  /** the most CMD_SUBMITs outstanding at once (the pipelining the client reached) */
  maxInFlight: number;
}


/** How long the frontend relay waits for the backend to answer an unlinked URB before answering vhci-hcd itself (Unlink deadline above); an honest usbip-host answers in milliseconds, under emulation in well under a second. */
export const UNLINK_DEADLINE_MS = 3000;

/** Payload size above which a bulk/interrupt RET_SUBMIT or CMD_SUBMIT is forwarded cut-through (see above). */
export const CUT_THROUGH_MIN = 16 * 1024;

export class UrbRelay extends EventEmitter {
  readonly table = new UrbTable();
  readonly stats: RelayStats = { cmdSubmit: 0, cmdUnlink: 0, retSubmit: 0, retUnlink: 0, unlinksAnswered: 0, unlinksTimedOut: 0, lateAnswersDropped: 0, payloadBytes: 0, maxInFlight: 0 };
  private cdec: ClientStreamDecoder;
  /** the client side's streams (replaced by a client hand-over); undefined between detachClient and attachClient */
  private client: { in: ByteSource; out: ByteSink; off: () => void } | undefined;
  /** seqnums (submits and unlinks) a previous client left outstanding: answers checked, then dropped */
  private readonly orphans = new Set<number>();
  /** where answers go while no client is attached (a client hand-over in progress) */
  private readonly discard = new Writable({ write: (_c, _e, cb) => cb() });
  /** when the client side last sent a message (or was attached) */
  /**
   * The client's activity, for clientIdleMs: a count of its chunks, and the time at which a look
   * first saw the count as it is (no clock read per chunk: the data path does not pay for a
   * question asked only while a port enumerates).
   */
  private clientChunks = 0;
  private readonly clientClock = new IdleClock();
  private readonly sdec: ServerStreamDecoder;
  /** answered seqnums, for "unlink of a known seqnum" */
  private readonly recent = new RecentSeqnums();
  private readonly held = new Map<number, { unlink: CmdUnlink; timer: NodeJS.Timeout }>();
  /** frontend role, by victim seqnum: the unlink forwarded and its deadline */
  private readonly deadlines = new Map<number, { timer: NodeJS.Timeout }>();
  /** seqnums (victims and unlinks) the relay answered at the deadline: the backend's late answers are dropped */
  private readonly late = new Set<number>();
  /** per side it came from: the message being forwarded cut-through, its stream offset and the payload bytes sent */
  private readonly partial: Record<RelayEnd, { at: number; sent: number } | undefined> = { client: undefined, server: undefined };
  /** held unlinks whose grace ended while a CMD_SUBMIT was passing cut-through: forwarded after it */
  private deferred: CmdUnlink[] = [];
  private finished = false;
  private resolveDone!: (r: RelayResult) => void;
  readonly done: Promise<RelayResult>;

  constructor(private readonly o: RelayOptions) {
    super();
    this.cdec = this.clientDecoder();
    this.sdec = new ServerStreamDecoder({ table: this.table, phase: "urb" });
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  private clientDecoder(): ClientStreamDecoder {
    const dev = this.o.device;
    const endpointType = dev ? (ep: number, dir: number): EndpointType | undefined => dev.endpoint(ep, dir) : undefined;
    return new ClientStreamDecoder({ table: this.table, phase: "urb", endpointType });
  }

  start(): void {
    const { serverIn } = this.o;
    serverIn.on("data", (c: Buffer) => this.fromServer(c));
    serverIn.on("end", () => this.closed("server"));
    for (const s of [serverIn, this.o.serverOut]) s.on("error", () => this.closed("server"));
    this.listenToClient(this.o.clientIn, this.o.clientOut);
    if (this.o.serverPrefix && this.o.serverPrefix.length > 0) this.fromServer(this.o.serverPrefix);
    serverIn.resume();
  }

  private listenToClient(input: ByteSource, out: ByteSink): void {
    const onData = (c: Buffer) => this.fromClient(c);
    const onEnd = () => this.closed("client");
    input.on("data", onData);
    input.on("end", onEnd);
    input.on("error", onEnd);
    out.on("error", onEnd);
    const off = () => {
      input.off("data", onData);
      input.off("end", onEnd);
      input.off("error", onEnd);
      out.off("error", onEnd);
    };
    this.client = { in: input, out, off };
    this.clientChunks++;
    input.resume();
  }

  /**
   * How long the client side has been silent: since the first look (a call of this) after its
   * last chunk, or after it was attached — at most one polling interval later than the chunk.
   */
  clientIdleMs(now = Date.now()): number {
    return this.clientClock.idleMs(this.clientChunks, now);
  }

  /** The client's chunks so far (its activity, for a clientIdleMs kept on another thread). */
  get clientChunkCount(): number {
    return this.clientChunks;
  }

  /** An unlink is held or has a deadline: a timer will fire (whoever drives the relay's I/O should not sleep long). */
  get timersPending(): boolean {
    return this.held.size + this.deadlines.size > 0;
  }

  /** URBs (submits and unlinks) the current client is waiting for. */
  get outstanding(): number {
    return this.table.size - this.orphans.size - this.late.size;
  }

  /**
   * Let go of the client streams (see Client hand-over above) without ending either side; what
   * the old client left outstanding becomes orphaned. Refused (false) while a message is passing
   * cut-through in either direction, or after the relay ended. The old streams are the caller's.
   */
  detachClient(): boolean {
    if (this.finished || this.client === undefined || this.partial.client !== undefined || this.partial.server !== undefined) return false;
    this.client.in.pause();
    this.client.off();
    this.client = undefined;
    for (const s of this.table.seqnums()) this.orphans.add(s);
    return true;
  }

  /** Give the client side to new streams (a new vhci-hcd port), decoded from their first byte. */
  attachClient(input: ByteSource, out: ByteSink): void {
    if (this.finished) {
      out.end();
      return;
    }
    this.cdec = this.clientDecoder();
    this.listenToClient(input, out);
  }

  /** Stop relaying (e.g. on a signal): both sides are ended. */
  stop(): void {
    this.finish({ reason: "stopped", stats: this.stats });
  }

  private fromClient(chunk: Buffer): void {
    if (this.client === undefined) return;
    this.clientChunks++;
    this.pump(chunk, "client", this.cdec, this.client.in, this.o.serverOut, (m, at) => this.clientMessage(m, at), () => this.cutThroughCmd());
  }

  /** Decode a chunk from one side and hand each message on; writes of one chunk are corked together. */
  private pump<M>(chunk: Buffer, from: RelayEnd, dec: { push(c: Buffer): void; next(): M | null; readonly messageOffset: number; readonly error: ProtocolError | null }, src: ByteSource, out: ByteSink, handle: (m: M, at: number) => void, after?: () => void): void {
    if (this.finished) return;
    dec.push(chunk);
    out.cork();
    try {
      for (let m = dec.next(); m !== null; m = dec.next()) handle(m, dec.messageOffset);
      if (dec.error) return this.violation(from, dec.error);
      after?.();
    } catch (e) {
      if (e instanceof ProtocolError) return this.violation(from, e);
      throw e;
    } finally {
      out.uncork();
    }
    pauseWhileBacklogged(src, out);
  }

  private clientMessage(m: ClientMessage, at: number): void {
    const dev = this.o.device;
    if (m.kind === "CMD_SUBMIT") {
      if (dev) checkCmdSubmit(m, dev, at);
      this.stats.cmdSubmit++;
      this.stats.payloadBytes += m.transferBufferLength * (m.direction === Direction.OUT ? 1 : 0);
      // the decoder has added it to the table already
      if (this.table.submitCount > this.stats.maxInFlight) this.stats.maxInFlight = this.table.submitCount;
    } else if (m.kind === "CMD_UNLINK") {
      if (dev) checkCmdUnlink(m, dev, (s) => this.table.getSubmit(s) !== undefined || this.recent.has(s), at);
      this.stats.cmdUnlink++;
      const grace = this.o.unlinkGraceMs ?? 0;
      if (grace > 0 && this.table.getSubmit(m.unlinkSeqnum) !== undefined) {
        const timer = setTimeout(() => {
          this.held.delete(m.unlinkSeqnum);
          if (this.finished) return;
          if (this.partial.client !== undefined) this.deferred.push(m); // never inside a message passing cut-through
          else this.write(this.o.serverOut, m);
        }, grace);
        this.held.set(m.unlinkSeqnum, { unlink: m, timer });
        this.o.onMessage?.("client", m);
        return;
      }
    } else {
      throw new ProtocolError(WireCode.UNEXPECTED_OP, at, `${m.kind} in the URB phase`);
    }
    this.o.onMessage?.("client", m);
    this.forward("client", m, at, this.o.serverOut);
    if (m.kind === "CMD_UNLINK") this.armDeadline(m);
    if (this.partial.client === undefined && this.deferred.length > 0) {
      for (const u of this.deferred) this.write(this.o.serverOut, u);
      this.deferred = [];
    }
  }

  /** Frontend role: answer the unlink ourselves if its victim is still unanswered at the deadline (see Unlink deadline above). */
  private armDeadline(m: CmdUnlink): void {
    const ms = this.o.unlinkDeadlineMs ?? 0;
    if (ms <= 0 || this.table.getSubmit(m.unlinkSeqnum) === undefined || this.deadlines.has(m.unlinkSeqnum)) return;
    const expire = (): void => {
      if (this.finished) return;
      const d = this.deadlines.get(m.unlinkSeqnum);
      if (d === undefined) return;
      // never inside a RET passing cut-through to the client: try again when it is whole
      if (this.partial.server !== undefined) {
        d.timer = setTimeout(expire, 10);
        return;
      }
      this.deadlines.delete(m.unlinkSeqnum);
      if (this.orphans.has(m.unlinkSeqnum) || this.table.getSubmit(m.unlinkSeqnum) === undefined) return;
      // the table keeps both entries, so that the late answers are still framed and checked, then dropped
      this.late.add(m.unlinkSeqnum);
      this.late.add(m.seqnum);
      const ret: ServerMessage = { kind: "RET_UNLINK", seqnum: m.seqnum, devid: 0, direction: 0, ep: 0, status: -104 /* -ECONNRESET */ };
      this.stats.unlinksTimedOut++;
      this.o.onMessage?.("server", ret, this.table.getSubmit(m.unlinkSeqnum));
      this.write(this.clientOut, ret);
    };
    this.deadlines.set(m.unlinkSeqnum, { timer: setTimeout(expire, ms) });
  }

  /** The backend answered `victim` (RET_SUBMIT, or RET_UNLINK of its unlink): no deadline for it any more. */
  private answered(victim: number | undefined): void {
    if (victim === undefined) return;
    const d = this.deadlines.get(victim);
    if (d === undefined) return;
    clearTimeout(d.timer);
    this.deadlines.delete(victim);
  }

  /**
   * Write a whole message, or only what is left of it if it began passing cut-through. A
   * non-ISO submit whose header the decoder found canonical leaves with that header as received
   * (the same bytes encode() would write, without building them), then its payload views.
   */
  private forward(from: RelayEnd, m: Message, at: number, out: ByteSink): void {
    const p = this.partial[from];
    if (m.kind !== "CMD_SUBMIT" && m.kind !== "RET_SUBMIT") return this.write(out, m);
    if (p?.at === at) {
      for (const b of skipPayload(m.payload, p.sent)) out.write(b);
      this.partial[from] = undefined;
      return;
    }
    const header = (from === "client" ? this.cdec : this.sdec).canonicalHeader;
    if (header === undefined || m.isoPackets !== undefined) return this.write(out, m);
    out.write(header);
    for (const b of m.payload) if (b.length > 0) out.write(b);
  }

  /**
   * Forward the header (once) and the `fresh` payload bytes of a message that is not whole yet
   * (see Cut-through above); `fresh` starts after the bytes already sent (the decoders were asked
   * from `sent`).
   */
  private passPartial(from: RelayEnd, at: number, header: CmdSubmit | RetSubmit, fresh: Buffer[], out: ByteSink): void {
    let p = this.partial[from];
    if (p?.at !== at) {
      p = this.partial[from] = { at, sent: 0 };
      out.write(encodeSubmitHeader(header));
    }
    for (const b of fresh) {
      out.write(b);
      p.sent += b.length;
    }
  }

  /** Payload bytes of the message at `at` already passed on cut-through (0 for a new one). */
  private sentOf(from: RelayEnd, at: number): number {
    const p = this.partial[from];
    return p?.at === at ? p.sent : 0;
  }

  /** A large bulk/interrupt OUT CMD_SUBMIT: checked (decoder, table, device rules), then passed on as it arrives. */
  private cutThroughCmd(): void {
    const at = this.cdec.offset;
    const p = this.cdec.partialCmdSubmit(this.sentOf("client", at), CUT_THROUGH_MIN);
    if (p === undefined || p.msg.ep === 0 || p.msg.transferBufferLength <= CUT_THROUGH_MIN) return;
    if (this.partial.client?.at !== at && this.o.device) checkCmdSubmit(p.msg, this.o.device, at);
    this.passPartial("client", at, p.msg, p.payloadSoFar, this.o.serverOut);
  }

  private fromServer(chunk: Buffer): void {
    // between detachClient and attachClient everything outstanding is orphaned: answers are dropped
    this.pump(chunk, "server", this.sdec, this.o.serverIn, this.client?.out ?? this.discard, (m, at) => this.serverMessage(m, at), () => this.cutThrough());
  }

  /** The client stream RETs go to (nothing between detachClient and attachClient). */
  private get clientOut(): ByteSink {
    return this.client?.out ?? this.discard;
  }

  /** A large bulk/interrupt IN RET_SUBMIT: checked (decoder, table, relay rules), then passed on as it arrives. */
  private cutThrough(): void {
    const at = this.sdec.offset;
    const p = this.sdec.partialRetSubmit(this.sentOf("server", at), CUT_THROUGH_MIN);
    if (p === undefined || p.urb.iso || p.urb.ep === 0 || p.msg.actualLength <= CUT_THROUGH_MIN || this.orphans.has(p.msg.seqnum)) return;
    if (this.partial.server?.at !== at) checkRetSubmit(p.msg, p.urb, at);
    this.passPartial("server", at, p.msg, p.payloadSoFar, this.clientOut);
  }

  private serverMessage(m: ServerMessage, at: number): void {
    if (m.kind === "RET_SUBMIT") {
      checkRetSubmit(m, this.sdec.lastSubmit!, at);
      if (this.sdec.lastSubmit!.ep === 0) this.o.screen?.(m, this.sdec.lastSubmit!, at);
      this.recent.add(m.seqnum);
      const urb = this.sdec.lastSubmit;
      this.answered(m.seqnum);
      if (this.late.delete(m.seqnum)) {
        this.stats.lateAnswersDropped++;
        return; // answered by the relay at its unlink's deadline
      }
      this.stats.retSubmit++;
      this.stats.payloadBytes += m.actualLength * (this.sdec.lastSubmit!.direction === Direction.IN ? 1 : 0);
      if (this.orphans.delete(m.seqnum)) return; // submitted through a vhci port given up
      this.o.onMessage?.("server", m, urb);
      this.forward("server", m, at, this.clientOut);
      const h = this.held.get(m.seqnum);
      if (h !== undefined) {
        // completed while its unlink was held: answer like the stub does for a completed URB
        clearTimeout(h.timer);
        this.held.delete(m.seqnum);
        this.table.answerUnlink(h.unlink.seqnum);
        const ret: ServerMessage = { kind: "RET_UNLINK", seqnum: h.unlink.seqnum, devid: 0, direction: 0, ep: 0, status: 0 };
        this.stats.unlinksAnswered++;
        this.o.onMessage?.("server", ret, urb);
        this.write(this.clientOut, ret);
      }
      return;
    }
    if (m.kind === "RET_UNLINK") {
      checkRetUnlink(m, at);
      if (this.sdec.lastSubmit) this.recent.add(this.sdec.lastSubmit.seqnum);
      if (this.sdec.lastSubmit) this.orphans.delete(this.sdec.lastSubmit.seqnum);
      this.answered(this.sdec.lastSubmit?.seqnum);
      if (this.sdec.lastSubmit) this.late.delete(this.sdec.lastSubmit.seqnum);
      if (this.late.delete(m.seqnum)) {
        this.stats.lateAnswersDropped++;
        return; // answered by the relay at its deadline
      }
      this.stats.retUnlink++;
      if (this.orphans.delete(m.seqnum)) return; // an unlink from a vhci port given up
      this.o.onMessage?.("server", m, this.sdec.lastSubmit);
      this.write(this.clientOut, m);
      return;
    }
    throw new ProtocolError(WireCode.UNEXPECTED_OP, at, `${m.kind} in the URB phase`);
  }

  private write(out: ByteSink, m: Message): void {
    for (const b of encode(m)) out.write(b);
  }

  private violation(from: RelayEnd, error: ProtocolError): void {
    this.finish({ reason: "violation", violation: { from, error }, stats: this.stats });
  }

  private closed(side: RelayEnd): void {
    this.finish({ reason: side === "client" ? "client closed" : "server closed", stats: this.stats });
  }

  private finish(r: RelayResult): void {
    if (this.finished) return;
    this.finished = true;
    for (const h of [...this.held.values(), ...this.deadlines.values()]) clearTimeout(h.timer);
    this.held.clear();
    this.deadlines.clear();
    const { serverIn, serverOut } = this.o;
    const sides: Array<{ in: ByteSource; out: ByteSink }> = [{ in: serverIn, out: serverOut }, ...(this.client ? [this.client] : [])];
    if (r.reason === "violation") {
      // tear down hard: nothing more reaches either side
      for (const s of sides) s.in.pause();
      for (const s of sides) {
        s.out.destroy();
        s.in.destroy();
      }
    } else {
      // orderly: EOF to both sides; inputs that are not also outputs are closed (a duplex
      // socket closes itself once both directions ended)
      for (const s of sides) s.out.end();
      for (const s of sides) if (s.in !== (s.out as unknown)) s.in.destroy();
    }
    this.resolveDone(r);
  }
}
