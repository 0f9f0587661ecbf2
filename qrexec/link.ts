/**
 * The qrexec link as streams for the relay modes: fd 0 in, fd 1 out (works with separate pipes
 * and with the single socket). Streams are made non-blocking for the event loop: a socket fd
 * becomes a net.Socket; anything else goes through fs streams (libuv's thread pool), never the
 * synchronous process.stdout of pipes.
 */
import { createReadStream, createWriteStream, fstatSync } from "node:fs";
import net from "node:net";
import type { Readable, Writable } from "node:stream";

export interface Link {
  input: Readable;
  output: Writable;
}

export function openLink(inFd = 0, outFd = 1): Link {
  const isSock = (fd: number) => {
    try {
      return fstatSync(fd).isSocket();
    } catch {
      return false;
    }
  };
  const input: Readable = isSock(inFd) ? new net.Socket({ fd: inFd, readable: true, writable: false, allowHalfOpen: true }) : createReadStream("", { fd: inFd, highWaterMark: 1 << 16 });
  const output: Writable = isSock(outFd) ? new net.Socket({ fd: outFd, readable: false, writable: true }) : createWriteStream("", { fd: outFd });
  return { input, output };
}
