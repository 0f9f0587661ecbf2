/**
 * The fuzzing stage (`--fuzz`): frames the traffic between a client side (vhci-hcd, or the
 * validating relay in front of it) and a server side (the link to the other qube), and passes
 * the messages of one side through the Mutator on their way to the other: `mutate: "server"`
 * mutates RET_* toward the client (the frontend role: what vhci-hcd receives), `"client"` CMD_*
 * toward the server (the backend role: what usbip-host receives). The other direction is
 * forwarded byte for byte as it comes.
 *
 * Framing needs the honest streams: RET_SUBMITs are framed by the CMD_SUBMITs they answer, so in
 * the frontend role both directions are decoded as they arrive (before any mutation), with one
 * URB table; in the backend role CMDs frame themselves, and each is taken off the table as soon
 * as it is decoded (the RETs, answers to what was really sent, are not decoded). A stream that
 * cannot be framed ends the stage (`reason: "unframed"`): the honest side broke the protocol.
 *
 * Composition: in front of the validating relay (fuzz first, validate after: the relay must stop
 * whatever the stage made), or alone (`--no-validate`: straight to the kernel).
 *
 * Tracing (`onSent`, for `--no-validate --trace`: no relay after the stage records what the
 * kernel got): every message the stage sent the target, mutated ones read back as sent
 * (trace/as-sent.ts) with their mutation as the comment, and what the target sent back. In the
 * frontend role those are the honest CMDs; in the backend role usbip-host's RETs, framed by the
 * CMDs as sent (a second table): a stream that the mutations made unframeable stops only the
 * tracing of the RETs (`untraced` in the result says where).
 */
import { EventEmitter } from "node:events";
import type { Readable, Writable } from "node:stream";
import { ClientStreamDecoder } from "../protocol/client-decoder.js";
import { ServerStreamDecoder } from "../protocol/server-decoder.js";
import { encode } from "../protocol/encoder.js";
import type { ProtocolError } from "../protocol/errors.js";
import { payloadLength, type ClientMessage, type ServerMessage, type UrbMessage } from "../protocol/messages.js";
import { UrbTable } from "../protocol/urb-table.js";
import type { SubmittedUrb } from "../protocol/urb-table.js";
import { asSent } from "../trace/as-sent.js";
import { formatMutation, type MessageFacts, type Mutator } from "./mutator.js";
import type { RelayEnd } from "./urb-relay.js";

export interface FuzzStageOptions {
  /** the side whose messages are mutated on their way to the other */
  mutate: RelayEnd;
  clientIn: Readable;
  clientOut: Writable;
  serverIn: Readable;
  serverOut: Writable;
  /** bytes already read from the server side (after the handshake line), handled first */
  serverPrefix?: Buffer;
  mutator: Mutator;
  /** each URB message as the target received or sent it; `comment`: the mutation made in it */
  onSent?: (m: ClientMessage | ServerMessage, o: { urb?: SubmittedUrb | undefined; comment?: string | undefined }) => void;
}

export interface FuzzStageResult {
  reason: "client closed" | "server closed" | "stopped" | "unframed";
  error?: ProtocolError;
  /** messages passed through the mutator, and how many it changed */
  messages: number;
  mutated: number;
  /** tracing: where the target's answers stopped being traced (backend role, see above) */
  untraced?: string;
}

export class FuzzStage extends EventEmitter {
  private readonly table = new UrbTable();
  private readonly cdec: ClientStreamDecoder;
  private readonly sdec: ServerStreamDecoder;
  private finished = false;
  /** backend role, tracing: the CMDs as usbip-host got them, to frame its RETs */
  private readonly sentTable = new UrbTable();
  private readonly retDec = new ServerStreamDecoder({ table: this.sentTable, phase: "urb" });
  /** seqnums sent more than once (a duplicate mutation): each is answered once per copy */
  private readonly copies = new Map<number, SubmittedUrb[]>();
  private untraced: string | undefined;
  private resolveDone!: (r: FuzzStageResult) => void;
  readonly done: Promise<FuzzStageResult>;

  constructor(private readonly o: FuzzStageOptions) {
    super();
    this.cdec = new ClientStreamDecoder({ table: this.table, phase: "urb" });
    this.sdec = new ServerStreamDecoder({ table: this.table, phase: "urb" });
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  start(): void {
    const o = this.o;
    o.clientIn.on("data", (c: Buffer) => this.fromClient(c));
    o.serverIn.on("data", (c: Buffer) => this.fromServer(c));
    // a stream the other end destroyed (the validating relay tears down hard) only closes
    for (const ev of ["end", "close"]) {
      o.clientIn.on(ev, () => this.finish("client closed"));
      o.serverIn.on(ev, () => this.finish("server closed"));
    }
    for (const s of [o.clientIn, o.clientOut]) s.on("error", () => this.finish("client closed"));
    for (const s of [o.serverIn, o.serverOut]) s.on("error", () => this.finish("server closed"));
    if (o.serverPrefix && o.serverPrefix.length > 0) this.fromServer(o.serverPrefix);
    // a stream paused before (the link after the handshake was read) stays paused with a listener
    o.clientIn.resume();
    o.serverIn.resume();
  }

  stop(): void {
    this.finish("stopped");
  }

  private fromClient(chunk: Buffer): void {
    if (this.finished) return;
    const onSent = this.o.onSent;
    if (this.o.mutate === "server") {
      this.o.serverOut.write(chunk);
      this.frame(this.cdec, chunk, onSent ? (m: ClientMessage) => onSent(m, {}) : () => {});
      return;
    }
    this.frame(this.cdec, chunk, (m: ClientMessage) => {
      if (m.kind !== "CMD_SUBMIT" && m.kind !== "CMD_UNLINK") return;
      // CMDs frame themselves: nothing is kept for answers this stage never decodes
      const urb = m.kind === "CMD_SUBMIT" ? this.table.answerSubmit(m.seqnum) : (this.table.answerUnlink(m.seqnum), undefined);
      const facts = m.kind === "CMD_SUBMIT" ? { kind: m.kind, payloadLength: payloadLength(m.payload), packets: m.isoPackets?.length ?? 0 } : { kind: m.kind, payloadLength: 0, packets: 0 };
      this.send(m, facts, this.o.serverOut, (sent, comment) => {
        onSent?.(sent, { comment });
        if (onSent) this.expectAnswer(sent, urb);
      });
    });
  }

  /** `m` through the mutator to `out`; `each` is told of every copy sent (when tracing). */
  private send<M extends ClientMessage | ServerMessage>(m: M & { kind: MessageFacts["kind"] }, facts: MessageFacts, out: Writable, each: (sent: M, comment: string | undefined) => void): void {
    const wire = Buffer.concat(encode(m));
    const log = this.o.mutator.log;
    const before = log.length;
    const sent = this.o.mutator.mutate(wire, facts);
    for (const b of sent) out.write(b);
    if (!this.o.onSent) return;
    const comment = log.length > before ? formatMutation(log[log.length - 1]!) : undefined;
    for (const b of sent) each(asSent(b, m as M & UrbMessage, wire) as M, comment);
  }

  /** Backend role, tracing: usbip-host will answer the CMD it got, as it got it. */
  private expectAnswer(sent: ClientMessage, honest: SubmittedUrb | undefined): void {
    if (sent.kind === "CMD_UNLINK") {
      this.sentTable.addUnlink({ seqnum: sent.seqnum, devid: sent.devid, unlinkSeqnum: sent.unlinkSeqnum });
      return;
    }
    if (sent.kind !== "CMD_SUBMIT") return;
    const urb: SubmittedUrb = { seqnum: sent.seqnum, devid: sent.devid, direction: sent.direction, ep: sent.ep, transferFlags: sent.transferFlags, transferBufferLength: sent.transferBufferLength, iso: honest?.iso ?? false, numberOfPackets: sent.numberOfPackets, isoPackets: sent.isoPackets, setup: sent.ep === 0 ? sent.setup : undefined };
    if (this.sentTable.addSubmit(urb) !== "duplicate") return;
    const more = this.copies.get(sent.seqnum) ?? [];
    more.push(urb);
    this.copies.set(sent.seqnum, more);
  }

  /** Backend role, tracing: usbip-host's answers, framed by what it was sent. */
  private traceAnswers(chunk: Buffer): void {
    if (this.untraced !== undefined) return;
    const dec = this.retDec;
    dec.push(chunk);
    try {
      for (let m = dec.next(); m !== null; m = dec.next()) {
        if (m.kind !== "RET_SUBMIT" && m.kind !== "RET_UNLINK") continue;
        this.o.onSent!(m, { urb: dec.lastSubmit });
        const again = m.kind === "RET_SUBMIT" ? this.copies.get(m.seqnum)?.shift() : undefined;
        if (again) this.sentTable.addSubmit(again);
      }
    } catch (e) {
      this.untraced = `the target's answers are not traced after this: ${(e as Error).message}`;
    }
    if (dec.error && this.untraced === undefined) this.untraced = `the target's answers are not traced after this: ${dec.error.message}`;
  }

  private fromServer(chunk: Buffer): void {
    if (this.finished) return;
    if (this.o.mutate === "client") {
      this.o.clientOut.write(chunk);
      if (this.o.onSent) this.traceAnswers(chunk);
      return;
    }
    this.frame(this.sdec, chunk, (m: ServerMessage) => {
      if (m.kind !== "RET_SUBMIT" && m.kind !== "RET_UNLINK") return;
      // the URB it answers (a RET_UNLINK: its victim, when it was still in flight)
      const urb = this.sdec.lastSubmit;
      const facts = m.kind === "RET_SUBMIT" ? { kind: m.kind, payloadLength: payloadLength(m.payload), packets: m.isoPackets?.length ?? 0, ...(urb?.ep === 0 && urb.setup ? { setup: urb.setup } : {}) } : { kind: m.kind, payloadLength: 0, packets: 0 };
      this.send(m, facts, this.o.clientOut, (sent, comment) => this.o.onSent!(sent, { urb, comment }));
    });
  }

  private frame<M>(dec: { push(c: Buffer): void; next(): M | null; readonly error: ProtocolError | null }, chunk: Buffer, each: (m: M) => void): void {
    dec.push(chunk);
    try {
      for (let m = dec.next(); m !== null; m = dec.next()) each(m);
    } catch (e) {
      return this.finish("unframed", e as ProtocolError);
    }
    if (dec.error) this.finish("unframed", dec.error);
  }

  private finish(reason: FuzzStageResult["reason"], error?: ProtocolError): void {
    if (this.finished) return;
    this.finished = true;
    const o = this.o;
    o.clientOut.end();
    o.serverOut.end();
    o.clientIn.pause();
    o.serverIn.pause();
    this.resolveDone({ reason, ...(error ? { error } : {}), messages: o.mutator.seen, mutated: o.mutator.log.length, ...(this.untraced ? { untraced: this.untraced } : {}) });
  }
}
