/**
 * The few system actions the glue needs besides sysfs: loading modules, resetting a device
 * (USBDEVFS_RESET), reading the handshake line without a byte more, and waiting for a socket's
 * hang-up without reading it — the ioctl, recv(MSG_PEEK) and poll() through koffi
 * (kernel-glue/libc.ts), since Node has none of them for a raw fd.
 */
import { execFile } from "node:child_process";
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { promisify } from "node:util";
import { GlueError, GlueErrorCode } from "./errors.js";
import { libc, MSG_DONTWAIT, MSG_PEEK, POLLIN, POLLNVAL } from "../shared/libc.js";
import type { Sysfs } from "./sysfs.js";
import { usbfsNode, USBFS_IOCTL } from "./usbfs.js";

export { watchHangup, type HangupWatch } from "./hangup-watcher.js";

/** _IO('U', 20) */
const EINTR = 4;
const EAGAIN = 11;
const ENOTSOCK = 88;

/** modprobe a module unless /sys/module shows it loaded already. */
export async function ensureModule(sysfs: Sysfs, name: string): Promise<void> {
  if (sysfs.exists(`module/${name.replace(/-/g, "_")}`)) return;
  try {
    await promisify(execFile)("modprobe", [name]);
  } catch (e) {
    const msg = (e as { stderr?: string }).stderr?.trim() || (e as Error).message;
    throw new GlueError(GlueErrorCode.MODPROBE, `modprobe ${name} failed: ${msg.split("\n")[0]}`);
  }
}


/** USBDEVFS_RESET on /dev/bus/usb/BBB/DDD (on a worker thread: a reset takes a while). */
export async function resetDevice(busnum: number, devnum: number): Promise<void> {
  const node = usbfsNode(busnum, devnum);
  let fd: number;
  try {
    fd = openSync(node, "w");
  } catch (e) {
    throw new GlueError(GlueErrorCode.SYSFS, `reset of ${node} failed: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const r = await libc().ioctlAsync(fd, USBFS_IOCTL.RESET, null);
    // errno lives on the worker thread that ran the call: the failure is named, not numbered
    if (r < 0) throw new GlueError(GlueErrorCode.SYSFS, `reset of ${node} failed: USBDEVFS_RESET refused`);
  } finally {
    closeSync(fd);
  }
}

export function isSocket(fd: number): boolean {
  try {
    return fstatSync(fd).isSocket();
  } catch {
    return false;
  }
}

export interface LineRead {
  bytes: Buffer;
  /** "line" (ends with \n), "eof" (closed before a newline), "long" (max bytes, no newline), "timeout", "interrupted" */
  end: "line" | "eof" | "long" | "timeout" | "interrupted";
  /** the signal that ended the wait, with "interrupted" */
  signal?: NodeJS.Signals;
}

/**
 * Read one line from this process's fd 0 without reading a byte past the newline (the rest
 * of the stream belongs to the kernel once the fd is handed over): poll() for data, recv() with
 * MSG_PEEK to see how far the line goes, then recv() exactly that (a pipe, which cannot peek,
 * is read a byte at a time). Bounded in size and time; `interrupt` (a termination signal) ends
 * the wait within one poll interval (100 ms).
 */
export async function readLineFromFd0(max: number, timeoutMs: number, interrupt?: Promise<NodeJS.Signals>): Promise<LineRead> {
  const c = libc();
  const deadline = Date.now() + timeoutMs;
  let stopped: { end: "interrupted"; signal: NodeJS.Signals } | undefined;
  interrupt?.then((signal) => (stopped ??= { end: "interrupted", signal }), () => {});
  const got = Buffer.alloc(max);
  let n = 0;
  let socket = true;
  const result = (end: LineRead["end"]): LineRead => ({ bytes: Buffer.from(got.subarray(0, n)), end });
  for (;;) {
    if (stopped) return { ...result("interrupted"), signal: stopped.signal };
    const left = deadline - Date.now();
    if (left <= 0) return result("timeout");
    let revents: number;
    try {
      revents = await c.pollAsync(0, POLLIN, Math.min(left, 100));
    } catch {
      return result("eof");
    }
    if (stopped) continue;
    if (revents === 0) continue;
    if ((revents & POLLNVAL) !== 0) return result("eof");
    const room = got.subarray(n);
    if (socket) {
      const k = c.recv(0, room, MSG_PEEK | MSG_DONTWAIT);
      if (k < 0) {
        const e = c.errno();
        if (e === ENOTSOCK) socket = false;
        else if (e !== EAGAIN && e !== EINTR) return result("eof");
        continue;
      }
      if (k === 0) return result("eof");
      const nl = room.subarray(0, k).indexOf(0x0a);
      const take = nl >= 0 ? nl + 1 : k;
      const r = c.recv(0, room.subarray(0, take), MSG_DONTWAIT);
      if (r <= 0) return result("eof");
      n += r;
      if (nl >= 0 && r === take) return result("line");
    } else {
      let r: number;
      try {
        r = readSync(0, room, 0, 1, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EAGAIN") continue;
        return result("eof");
      }
      if (r === 0) return result("eof");
      n += 1;
      if (got[n - 1] === 0x0a) return result("line");
    }
    if (n >= max) return result("long");
  }
}
