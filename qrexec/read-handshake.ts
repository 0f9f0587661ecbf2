/**
 * Read the handshake line from a stream the relay owns (relay modes: every byte passes through
 * us, so reading ahead is fine; the bytes after the newline are returned for the relay).
 */
import type { Readable } from "node:stream";
import { InterruptedError, UsbipError, PeerDataError, RuntimeCode } from "../protocol/errors.js";
import { MAX_HANDSHAKE_LINE, scanHandshake } from "../protocol/handshake.js";
import type { Handshake } from "../protocol/messages.js";

export function readHandshake(input: Readable, timeoutMs: number, interrupt?: Promise<NodeJS.Signals>): Promise<{ handshake: Handshake; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (f: () => void) => {
      clearTimeout(timer);
      input.off("data", onData);
      input.off("end", onEnd);
      input.pause();
      f();
    };
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const r = scanHandshake(buf.subarray(0, Math.max(MAX_HANDSHAKE_LINE, 1)));
      if (r.type === "need-more") return;
      if (r.type === "error") return done(() => reject(new PeerDataError(r.error.code, `invalid handshake from the backend: ${r.error.rule}`)));
      done(() => resolve({ handshake: r.handshake, rest: buf.subarray(r.length) }));
    };
    const onEnd = () =>
      done(() => reject(new UsbipError(RuntimeCode.NO_HANDSHAKE, buf.length === 0 ? "no device info received: the connection closed before the handshake (check the backend side's log)" : "incomplete handshake line: connection closed")));
    const timer = setTimeout(() => done(() => reject(new UsbipError(RuntimeCode.NO_HANDSHAKE, `no device info received within ${timeoutMs / 1000} s (the backend sent no handshake line)`))), timeoutMs);
    interrupt?.then((s) => done(() => reject(new InterruptedError(s, "while waiting for the backend's handshake"))), () => {});
    input.on("data", onData);
    input.on("end", onEnd);
    input.resume();
  });
}
