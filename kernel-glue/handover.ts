/**
 * Handing a socket to the kernel (relay modes: one end of a fresh socketpair; TCP: the
 * connection). The sysfs write that hands an fd over (vhci attach, usbip_sockfd) is resolved in
 * the writing process's fd table, so we write it ourselves with the fd number of our socket;
 * the kernel takes its own reference to the socket.
 */
import { closeSync } from "node:fs";
import net from "node:net";
import { giveUpReading } from "../shared/stop-reading.js";
import { socketFd } from "../shared/socketpair.js";
import { libc } from "../shared/libc.js";
import type { Sysfs } from "./sysfs.js";
import type { Vhci } from "./vhci.js";

/**
 * Write text(fd) to `rel`, fd being one end of a new socketpair (socketpair(2) through koffi,
 * both ends in this process); returns our end of it as a paused net.Socket, with whatever the
 * kernel already sent (vhci-hcd's first CMD_SUBMIT comes within microseconds of the attach)
 * waiting in its buffer. The other end is closed once the kernel holds it.
 */
export async function handOverSocket(sysfs: Sysfs, rel: string, text: (fd: number) => string): Promise<net.Socket> {
  const sock = new net.Socket({ fd: handOverFd(sysfs, rel, text), readable: true, writable: true, allowHalfOpen: true });
  sock.pause();
  return sock;
}

/** handOverSocket's raw form: our end of the socketpair as a bare fd (for the relay thread's poll loop). */
export function handOverFd(sysfs: Sysfs, rel: string, text: (fd: number) => string): number {
  const [mine, theirs] = libc().socketpair();
  try {
    sysfs.write(rel, text(theirs));
  } catch (e) {
    closeSync(mine);
    throw e;
  } finally {
    closeSync(theirs);
  }
  return mine;
}

/** vhci-hcd attach through a handed-over socket, on the first free port of the right hub (EBUSY: next). */
export async function attachHandover(vhci: Vhci, devid: number, speed: number, after?: number): Promise<{ port: number; socket: net.Socket }> {
  return vhci.attachOnFreePort(speed, after, async (port) => ({ port, socket: await handOverSocket(vhci.sysfs, `${vhci.dir()}/attach`, (fd) => `${port} ${fd} ${devid >>> 0} ${speed}`) }));
}

/** attachHandover with our end as a bare fd. */
export async function attachHandoverFd(vhci: Vhci, devid: number, speed: number, after?: number): Promise<{ port: number; fd: number }> {
  return vhci.attachOnFreePort(speed, after, async (port) => ({ port, fd: handOverFd(vhci.sysfs, `${vhci.dir()}/attach`, (fd) => `${port} ${fd} ${devid >>> 0} ${speed}`) }));
}

/** vhci-hcd attach of an existing socket (connect --tcp's TCP connection). */
export function attachExisting(vhci: Vhci, sock: net.Socket, devid: number, speed: number, after?: number): Promise<number> {
  return vhci.attachOnFreePort(speed, after, async (port) => {
    await handOverExisting(vhci.sysfs, `${vhci.dir()}/attach`, sock, (fd) => `${port} ${fd} ${devid >>> 0} ${speed}`);
    return port;
  });
}

/**
 * Hand an existing socket (e.g. an accepted TCP connection) to the kernel: text(its fd) written
 * to `rel` from this process, after Node has stopped reading it for good (giveUpReading). Our
 * handle stays open, for writes made before the kernel's (OP_REP_IMPORT) and for the hang-up
 * watch; the kernel has its own reference.
 */
export async function handOverExisting(sysfs: Sysfs, rel: string, sock: net.Socket, text: (fd: number) => string): Promise<void> {
  giveUpReading(sock);
  sysfs.write(rel, text(socketFd(sock)));
}
