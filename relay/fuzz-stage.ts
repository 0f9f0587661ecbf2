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
 */
import { EventEmitter } from "node:events";
import type { Readable, Writable } from "node:stream";
import { ClientStreamDecoder } from "../protocol/client-decoder.js";
import { ServerStreamDecoder } from "../protocol/server-decoder.js";
import { encode } from "../protocol/encoder.js";
import type { ProtocolError } from "../protocol/errors.js";
import { payloadLength, type ClientMessage, type ServerMessage } from "../protocol/messages.js";
import { UrbTable } from "../protocol/urb-table.js";
import type { Mutator } from "./mutator.js";
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
}

export interface FuzzStageResult {
  reason: "client closed" | "server closed" | "stopped" | "unframed";
  error?: ProtocolError;
  /** messages passed through the mutator, and how many it changed */
  messages: number;
  mutated: number;
}

export class FuzzStage extends EventEmitter {
  private readonly table = new UrbTable();
  private readonly cdec: ClientStreamDecoder;
  private readonly sdec: ServerStreamDecoder;
  private finished = false;
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
    if (this.o.mutate === "server") {
      this.o.serverOut.write(chunk);
      this.frame(this.cdec, chunk, () => {});
      return;
    }
    this.frame(this.cdec, chunk, (m: ClientMessage) => {
      if (m.kind !== "CMD_SUBMIT" && m.kind !== "CMD_UNLINK") return;
      // CMDs frame themselves: nothing is kept for answers this stage never decodes
      if (m.kind === "CMD_SUBMIT") this.table.answerSubmit(m.seqnum);
      else this.table.answerUnlink(m.seqnum);
      const facts = m.kind === "CMD_SUBMIT" ? { kind: m.kind, payloadLength: payloadLength(m.payload), packets: m.isoPackets?.length ?? 0 } : { kind: m.kind, payloadLength: 0, packets: 0 };
      for (const b of this.o.mutator.mutate(Buffer.concat(encode(m)), facts)) this.o.serverOut.write(b);
    });
  }

  private fromServer(chunk: Buffer): void {
    if (this.finished) return;
    if (this.o.mutate === "client") {
      this.o.clientOut.write(chunk);
      return;
    }
    this.frame(this.sdec, chunk, (m: ServerMessage) => {
      if (m.kind !== "RET_SUBMIT" && m.kind !== "RET_UNLINK") return;
      const urb = m.kind === "RET_SUBMIT" ? this.sdec.lastSubmit : undefined;
      const facts = m.kind === "RET_SUBMIT" ? { kind: m.kind, payloadLength: payloadLength(m.payload), packets: m.isoPackets?.length ?? 0, ...(urb?.ep === 0 && urb.setup ? { setup: urb.setup } : {}) } : { kind: m.kind, payloadLength: 0, packets: 0 };
      for (const b of this.o.mutator.mutate(Buffer.concat(encode(m)), facts)) this.o.clientOut.write(b);
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
    this.resolveDone({ reason, ...(error ? { error } : {}), messages: o.mutator.seen, mutated: o.mutator.log.length });
  }
}
