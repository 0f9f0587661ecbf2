/**
 * What the fuzzer (and its regression tests) check on one input: the decoders never throw
 * anything but their typed errors, report offsets inside the input, and every message they
 * return re-encodes to exactly as many bytes as it consumed and decodes back to itself.
 * The relay's cut-through asks about a message before it is whole (partialRetSubmit /
 * partialCmdSubmit): a header accepted early must never be refused once whole, and one refused
 * early must be refused by next() with the same code at the same offset.
 */
import { ClientStreamDecoder } from "../protocol/client-decoder.js";
import { ServerStreamDecoder } from "../protocol/server-decoder.js";
import { ErrorCode, ProtocolError } from "../protocol/errors.js";
import { encode } from "../protocol/encoder.js";
import { scanHandshake } from "../protocol/handshake.js";
import { UrbTable } from "../protocol/urb-table.js";
import type { Message } from "../protocol/messages.js";

export type Target = "client" | "server" | "handshake";
const codes = new Set<string>(Object.values(ErrorCode));

export interface Outcome {
  /** feature string: what happened (for corpus selection) */
  feature: string;
}

/** A violated invariant: a bug in the codec. */
export class OracleFailure extends Error {}

function checkError(e: ProtocolError | null, total: number): string {
  if (e === null) return "ok";
  if (!(e instanceof ProtocolError) || !codes.has(e.code)) throw new OracleFailure(`untyped or unknown error: ${String(e)}`);
  if (!(e.offset >= 0 && e.offset <= total)) throw new OracleFailure(`error offset ${e.offset} outside 0..${total}`);
  return e.code;
}

const len = (m: Message) => encode(m).reduce((n, b) => n + b.length, 0);

/** The cut-through's early look at a message that is not whole yet. */
function partial(dec: ClientStreamDecoder | ServerStreamDecoder, server: boolean): "accepted" | "none" | ProtocolError {
  try {
    const p = server ? (dec as ServerStreamDecoder).partialRetSubmit() : (dec as ClientStreamDecoder).partialCmdSubmit();
    return p === undefined ? "none" : "accepted";
  } catch (e) {
    if (e instanceof ProtocolError) return e;
    throw new OracleFailure(`early check threw: ${e instanceof Error ? e.stack : String(e)}`);
  }
}

/**
 * Run one input. `context` is a valid client stream (primes the URB table for the server
 * target); `cuts` splits the input into chunks.
 */
export function runOne(target: Target, input: Buffer, cuts: number[], context: Buffer, phase: string): Outcome {
  if (target === "handshake") {
    let r;
    try {
      r = scanHandshake(input);
    } catch (e) {
      throw new OracleFailure(`scanHandshake threw: ${String(e)}`);
    }
    if (r.type === "ok" && (r.length > input.length || input[r.length - 1] !== 0x0a)) throw new OracleFailure("handshake length not at a newline");
    return { feature: `hs:${r.type}:${r.type === "error" ? r.error.offset : 0}` };
  }
  const table = new UrbTable();
  let dec: ClientStreamDecoder | ServerStreamDecoder;
  if (target === "client") dec = new ClientStreamDecoder({ table, phase: phase === "op" ? "op" : "urb" });
  else {
    new ClientStreamDecoder({ table, phase: phase === "op" ? "op" : "urb" }).feed(context);
    dec = new ServerStreamDecoder({ table, phase: phase as "op" | "urb" | "handshake" });
  }
  const kinds: string[] = [];
  let prev = 0;
  const points = [...cuts.filter((c) => c > 0 && c < input.length).sort((a, b) => a - b), input.length];
  /** stream offsets of messages whose header the early check accepted */
  const acceptedEarly = new Set<number>();
  try {
    for (const p of points) {
      dec.push(input.subarray(prev, p));
      prev = p;
      const early = partial(dec, target === "server");
      if (early === "accepted") acceptedEarly.add(dec.offset);
      for (let m = dec.next(); m !== null; m = dec.next()) {
        kinds.push(m.kind);
        const start = dec.messageOffset;
        const consumed = dec.offset - start;
        if (m.kind === "HANDSHAKE") {
          // the line's spacing is not kept; its meaning must survive a round trip
          const again = scanHandshake(encode(m)[0]!);
          if (again.type !== "ok" || JSON.stringify(again.handshake) !== JSON.stringify(m)) throw new OracleFailure("handshake does not survive a round trip");
          continue;
        }
        const n = len(m);
        // ISO/non-ISO normalisation never changes a length; every byte consumed is re-encoded
        if (n !== consumed) throw new OracleFailure(`${m.kind} at ${start}: consumed ${consumed} bytes, re-encodes to ${n}`);
      }
      const err = dec.error;
      if (err !== null && [...acceptedEarly].some((at) => err.offset >= at && err.offset < at + 48)) {
        throw new OracleFailure(`a header accepted before its message was whole was refused once whole: ${err.code} at ${err.offset}`);
      }
      if (early instanceof ProtocolError) {
        // the table's verdict (duplicate, full) is given early, but by next() only when the message is whole
        const tableRule = early.code === ErrorCode.DUPLICATE_SEQNUM || early.code === ErrorCode.TOO_MANY_OUTSTANDING;
        if (!tableRule && (err?.code !== early.code || err.offset !== early.offset)) {
          throw new OracleFailure(`refused early (${early.code} at ${early.offset}) but next() gave ${err ? `${err.code} at ${err.offset}` : "no error"}`);
        }
        break;
      }
    }
  } catch (e) {
    if (e instanceof OracleFailure) throw e;
    throw new OracleFailure(`decoder threw: ${e instanceof Error ? e.stack : String(e)}`);
  }
  const code = checkError(dec.end(), input.length);
  return { feature: `${target}:${phase}:${code}:${kinds.slice(-3).join(",")}` };
}
