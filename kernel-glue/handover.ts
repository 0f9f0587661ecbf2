/**
 * Handing a socket to the kernel (relay modes: one end of a fresh socketpair; TCP: the
 * connection). The sysfs write that hands an fd over (vhci attach, usbip_sockfd) is resolved in
 * the writing process's fd table, so a helper child does it with the socket as its fd 3. The
 * kernel takes its own reference; the helper exits.
 */
import { spawn } from "node:child_process";
import { socketPair } from "../shared/socketpair.js";
import type net from "node:net";
import { python } from "../shared/python.js";
import { GlueError, GlueErrorCode } from "./errors.js";
import { USBFS_HELPER } from "./system.js";
import { type Sysfs, SysfsWriteError } from "./sysfs.js";
import type { Vhci } from "./vhci.js";

/**
 * Write text(3) to `rel` from a helper whose fd 3 is one end of a new socketpair; returns our
 * end of it, paused, with whatever the kernel already sent kept in its buffer. (Not a 'pipe'
 * stdio of the helper: Node resumes a child's unread stdio streams once it exits, which threw
 * away a CMD_SUBMIT vhci-hcd sent right after the attach, before the relay listened.)
 */
export async function handOverSocket(sysfs: Sysfs, rel: string, text: (fd: number) => string): Promise<net.Socket> {
  const [mine, theirs] = await socketPair();
  mine.pause();
  theirs.pause();
  try {
    await handOverExisting(sysfs, rel, theirs, text);
  } catch (e) {
    mine.destroy();
    throw e;
  } finally {
    theirs.destroy(); // the kernel holds its own reference now
  }
  return mine;
}

/** vhci-hcd attach through a handed-over socket, on the first free port of the right hub (EBUSY: next). */
export async function attachHandover(vhci: Vhci, devid: number, speed: number, after?: number): Promise<{ port: number; socket: net.Socket }> {
  return vhci.attachOnFreePort(speed, after, async (port) => ({ port, socket: await handOverSocket(vhci.sysfs, `${vhci.dir()}/attach`, (fd) => `${port} ${fd} ${devid >>> 0} ${speed}`) }));
}

/** vhci-hcd attach of an existing socket (connect --tcp's TCP connection). */
export function attachExisting(vhci: Vhci, sock: net.Socket, devid: number, speed: number, after?: number): Promise<number> {
  return vhci.attachOnFreePort(speed, after, async (port) => {
    await handOverExisting(vhci.sysfs, `${vhci.dir()}/attach`, sock, (fd) => `${port} ${fd} ${devid >>> 0} ${speed}`);
    return port;
  });
}

/**
 * Hand an existing socket (e.g. an accepted TCP connection) to the kernel: the helper gets it
 * as its fd 3 and writes text(3) to `rel`. Our handle stays open; the kernel has its own reference.
 */
export function handOverExisting(sysfs: Sysfs, rel: string, sock: net.Socket, text: (fd: number) => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const data = text(3);
    const child = spawn(python(), [USBFS_HELPER, "write", sysfs.path(rel), data], { stdio: ["ignore", "ignore", "pipe", sock] });
    let err = "";
    child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
    child.on("error", (e) => reject(new GlueError(GlueErrorCode.SYSFS, `cannot run the handover helper: ${e.message}`)));
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new SysfsWriteError(sysfs.path(rel), err.trim() || `exit ${code}`, data))));
  });
}
