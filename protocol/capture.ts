/**
 * Decoding a recorded connection: one byte string per direction, no timing. The client
 * stream is decoded first (filling the table of outstanding URBs), then the server stream
 * against it; causalOrder() interleaves the two as they happened (each answer after what it
 * answers), for decode's text and pcap's events. The phases are detected from the first bytes: 0x0111 starts an OP exchange
 * (TCP, usbipd), a digit starts the qrexec handshake line, anything else is the URB phase.
 */
import { USBIP_VERSION } from "./constants.js";
import { ClientStreamDecoder } from "./client-decoder.js";
import type { ProtocolError } from "./errors.js";
import type { ClientMessage, ServerMessage } from "./messages.js";
import { ServerStreamDecoder } from "./server-decoder.js";
import type { MatchedCommand } from "./summary.js";
import { UrbTable, type SubmittedUrb } from "./urb-table.js";

export type CaptureItem =
  | { type: "message"; from: "client"; message: ClientMessage; offset: number }
  | { type: "message"; from: "server"; message: ServerMessage; offset: number; matched: MatchedCommand | undefined; urb: SubmittedUrb | undefined }
  | { type: "error"; from: "client" | "server"; error: ProtocolError };

export function detectClientPhase(client: Buffer): "op" | "urb" {
  return client.length >= 2 && client.readUInt16BE(0) === USBIP_VERSION ? "op" : "urb";
}

export function detectServerPhase(server: Buffer, clientPhase: "op" | "urb"): "op" | "handshake" | "urb" {
  if (clientPhase === "op") return "op";
  const c = server[0];
  return c !== undefined && c >= 0x30 && c <= 0x39 ? "handshake" : "urb";
}

/**
 * Decode both directions of a capture. Stops at the first violation (yielding it last).
 * `chunkSize` feeds the bytes in pieces of that size (tests use it; default: all at once).
 */
export function* decodeCapture(client: Buffer, server: Buffer, chunkSize = 0): Generator<CaptureItem> {
  const table = new UrbTable(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const clientPhase = detectClientPhase(client);
  const cd = new ClientStreamDecoder({ table, phase: clientPhase, limits: { maxOutstanding: Number.MAX_SAFE_INTEGER, maxOutstandingBytes: Number.MAX_SAFE_INTEGER } });
  for (const chunk of chunks(client, chunkSize)) {
    cd.push(chunk);
    for (let m = cd.next(); m !== null; m = cd.next()) yield { type: "message", from: "client", message: m, offset: cd.messageOffset };
    if (cd.error !== null) break;
  }
  const cerr = cd.end();
  if (cerr !== null) {
    yield { type: "error", from: "client", error: cerr };
    return;
  }
  const sd = new ServerStreamDecoder({ table, phase: detectServerPhase(server, clientPhase) });
  for (const chunk of chunks(server, chunkSize)) {
    sd.push(chunk);
    for (let m = sd.next(); m !== null; m = sd.next()) {
      const matched = m.kind === "RET_UNLINK" ? sd.lastUnlink && { devid: sd.lastUnlink.devid, direction: 0, ep: 0 } : m.kind === "RET_SUBMIT" ? sd.lastSubmit : undefined;
      // urb: the CMD_SUBMIT a RET_SUBMIT answers, the victim of a RET_UNLINK (usbmon events need it)
      yield { type: "message", from: "server", message: m, offset: sd.messageOffset, matched, urb: m.kind === "RET_SUBMIT" || m.kind === "RET_UNLINK" ? sd.lastSubmit : undefined };
    }
    if (sd.error !== null) break;
  }
  const serr = sd.end();
  if (serr !== null) yield { type: "error", from: "server", error: serr };
}

function* chunks(b: Buffer, size: number): Generator<Buffer> {
  if (size <= 0 || size >= b.length) {
    if (b.length > 0) yield b;
    return;
  }
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

/**
 * The items of decodeCapture() in causal order: each server message after the client message it
 * answers (a RET after its CMD, an OP_REP after its OP_REQ; the qrexec handshake line comes
 * first, before any CMD), client messages as late as that allows. An error comes last.
 */
export function* causalOrder(items: Iterable<CaptureItem>): Generator<CaptureItem> {
  const client: CaptureItem[] = [];
  const server: CaptureItem[] = [];
  for (const it of items) (it.from === "client" ? client : server).push(it);
  let next = 0;
  /** client items up to and including the first that `answers` */
  function* clientUpTo(answers: (m: ClientMessage) => boolean): Generator<CaptureItem> {
    while (next < client.length) {
      const it = client[next++]!;
      yield it;
      if (it.type === "message" && it.from === "client" && answers(it.message)) return;
    }
  }
  for (const it of server) {
    if (it.type === "message" && it.from === "server") {
      const m = it.message;
      if (m.kind === "RET_SUBMIT" || m.kind === "RET_UNLINK") yield* clientUpTo((c) => "seqnum" in c && c.seqnum === m.seqnum);
      else if (m.kind === "OP_REP_DEVLIST" || m.kind === "OP_REP_IMPORT") yield* clientUpTo((c) => c.kind === "OP_REQ_DEVLIST" || c.kind === "OP_REQ_IMPORT");
    } else yield* clientUpTo(() => false);
    yield it;
  }
  yield* clientUpTo(() => false);
}
