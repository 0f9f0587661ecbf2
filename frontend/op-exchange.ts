/**
 * One request/reply of usbipd's OP phase over TCP (OP_REQ_DEVLIST → OP_REP_DEVLIST,
 * OP_REQ_IMPORT → OP_REP_IMPORT): connect, send, decode the reply strictly. Every wait on the
 * server is bounded (the TCP connect too: a black-holed host would otherwise hold us for the
 * kernel's SYN retries), a server that stays silent is announced after a few seconds, and a
 * signal ends the wait at once (InterruptedError).
 */
import net from "node:net";
import { InterruptedError, UsbipError, PeerDataError, WireCode, formatViolation, GlueCode, RuntimeCode } from "../protocol/errors.js";
import { encode } from "../protocol/encoder.js";
import type { ClientMessage, ServerMessage } from "../protocol/messages.js";
import { ServerStreamDecoder } from "../protocol/server-decoder.js";
import { stopReading } from "../shared/stop-reading.js";
import { formatHostPort } from "../protocol/host-port.js";

export interface OpExchangeOptions {
  host: string;
  port: number;
  /** bound on the whole exchange (connect + reply) */
  timeoutMs: number;
  /** told once when the server has not answered after `noticeMs` */
  notice?: (text: string) => void;
  noticeMs?: number;
  /** ends the wait (SIGINT/SIGTERM/SIGHUP) */
  interrupt?: Promise<NodeJS.Signals>;
}

/** Send `request`, resolve with the reply and the still-open socket (its reading stopped). */
export function opExchange(o: OpExchangeOptions, request: ClientMessage, expect: ServerMessage["kind"]): Promise<{ sock: net.Socket; reply: ServerMessage }> {
  const where = formatHostPort(o.host, o.port);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: o.host, port: o.port });
    const dec = new ServerStreamDecoder({ phase: "op" });
    let settled = false;
    const timer = setTimeout(() => fail(new UsbipError(GlueCode.TIMEOUT, `${where} did not answer ${request.kind} within ${o.timeoutMs / 1000} s`)), o.timeoutMs);
    const noticeTimer = o.notice && setTimeout(() => o.notice!(`waiting for ${where} to answer ${request.kind} (gives up after ${o.timeoutMs / 1000} s)`), o.noticeMs ?? 5000);
    const finish = () => {
      settled = true;
      clearTimeout(timer);
      if (noticeTimer) clearTimeout(noticeTimer);
      sock.off("data", onData);
    };
    const fail = (e: Error) => {
      if (settled) return;
      finish();
      sock.destroy();
      reject(e);
    };
    const onData = (c: Buffer) => {
      dec.push(c);
      const m = dec.next();
      if (dec.error) return fail(new PeerDataError(dec.error.code, `malformed reply from ${where}: ${formatViolation(dec.error)}`));
      if (m === null) return;
      if (m.kind !== expect) return fail(new PeerDataError(WireCode.UNEXPECTED_OP, `${where} sent ${m.kind} instead of ${expect}`));
      if (dec.buffered > 0) return fail(new PeerDataError(WireCode.TRAILING_DATA, `${where} sent data after ${m.kind} before any request`));
      finish();
      stopReading(sock);
      resolve({ sock, reply: m });
    };
    o.interrupt?.then((s) => fail(new InterruptedError(s, `while waiting for ${where}`)), () => {});
    sock.once("connect", () => {
      for (const b of encode(request)) sock.write(b);
    });
    let connected = false;
    sock.once("connect", () => (connected = true));
    sock.on("error", (e: NodeJS.ErrnoException) => fail(new UsbipError(RuntimeCode.CONNECT, connected ? `the connection to ${where} failed: ${netReason(e)}` : `cannot connect to ${where}: ${netReason(e)}`)));
    sock.on("data", onData);
    sock.once("end", () => fail(new UsbipError(RuntimeCode.CLOSED, `${where} closed the connection before answering ${request.kind}`)));
  });
}

/** A socket error in words (the code stays in the text for searching). */
export function netReason(e: NodeJS.ErrnoException): string {
  const words: Record<string, string> = {
    ECONNREFUSED: "connection refused (is a usbipd listening there?)",
    ECONNRESET: "connection reset by the server",
    ENOTFOUND: "no such host",
    EAI_AGAIN: "the host name cannot be resolved now",
    EHOSTUNREACH: "host unreachable",
    ENETUNREACH: "network unreachable",
    ETIMEDOUT: "timed out",
    EPIPE: "the server closed the connection",
  };
  const w = e.code === undefined ? undefined : words[e.code];
  return w === undefined ? (e.code ?? e.message) : `${w} (${e.code})`;
}
