/**
 * The qrexec link as streams for the relay modes: fd 0 in, fd 1 out (works with separate pipes
 * and with the single socket). Sockets and pipes become libuv stream handles (net.Socket):
 * non-blocking, polled by the event loop. Only what is neither (a file, a tty) goes through fs
 * streams, whose reads and writes block in libuv's thread pool — and process exit waits for a
 * blocked one: a peer that neither writes nor closes would keep us alive (measured: exit held
 * until the peer acted). A relay that refuses a hostile peer must be able to leave at once.
 */
import { createReadStream, createWriteStream, fstatSync } from "node:fs";
import net from "node:net";
import type { Readable, Writable } from "node:stream";

export interface Link {
  input: Readable;
  output: Writable;
}

/** true for a socket or a pipe (FIFO): what libuv — and the relay thread's poll() loop — can poll. */
export function pollable(fd: number): boolean {
  try {
    const st = fstatSync(fd);
    return st.isSocket() || st.isFIFO();
  } catch {
    return false;
  }
}

export function openLink(inFd = 0, outFd = 1): Link {
  const input: Readable = pollable(inFd) ? new net.Socket({ fd: inFd, readable: true, writable: false, allowHalfOpen: true }) : createReadStream("", { fd: inFd, highWaterMark: 1 << 16 });
  const output: Writable = pollable(outFd) ? new net.Socket({ fd: outFd, readable: false, writable: true }) : createWriteStream("", { fd: outFd });
  return { input, output };
}

/**
 * Whether the relay runs on its own thread over the link's raw fds (relay/relay-thread.ts): when
 * both are pollable, unless USBIP_QREXEC_RELAY_THREAD=0 asks for the event-loop relay (the
 * comparison in the benchmarks; a fallback should the thread misbehave somewhere).
 */
export function relayThreadUsable(inFd = 0, outFd = 1): boolean {
  return process.env.USBIP_QREXEC_RELAY_THREAD !== "0" && pollable(inFd) && pollable(outFd);
}
