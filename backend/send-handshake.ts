/**
 * The one handshake writer of the backend: the qrexec link's first line, "DEVID SPEED\n"
 * (protocol/handshake.ts), written before any USB/IP byte — to the link's output stream, or
 * with one write(2) to fd 0 when that socket is handed to usbip-host right after (kernel mode:
 * nothing may still sit in a Node buffer then).
 */
import { writeSync } from "node:fs";
import type { Writable } from "node:stream";
import { formatHandshake } from "../protocol/handshake.js";
import type { Handshake } from "../protocol/messages.js";

export function sendHandshake(to: Writable | number, hs: Pick<Handshake, "devid" | "speed">): Promise<void> {
  const line = formatHandshake(hs);
  if (typeof to === "number") {
    writeSync(to, line);
    return Promise.resolve();
  }
  return new Promise<void>((resolve, reject) => to.write(line, (e) => (e ? reject(e) : resolve())));
}
