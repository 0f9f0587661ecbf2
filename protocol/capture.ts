/**
 * Decoding a recorded connection: one byte string per direction, no timing. The client
 * stream is decoded first (filling the table of outstanding URBs), then the server stream
 * against it. The phases are detected from the first bytes: 0x0111 starts an OP exchange
 * (TCP, usbipd), a digit starts the qrexec handshake line, anything else is the URB phase.
 */
import { USBIP_VERSION } from "./constants.js";
import { ClientStreamDecoder } from "./client-decoder.js";
import type { ProtocolError } from "./errors.js";
import type { ClientMessage, ServerMessage } from "./messages.js";
import { ServerStreamDecoder } from "./server-decoder.js";
import type { MatchedCommand } from "./summary.js";
import { UrbTable } from "./urb-table.js";

export type CaptureItem =
  | { type: "message"; from: "client"; message: ClientMessage; offset: number }
  | { type: "message"; from: "server"; message: ServerMessage; offset: number; matched: MatchedCommand | undefined }
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
      yield { type: "message", from: "server", message: m, offset: sd.messageOffset, matched };
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
