/**
 * The few system actions the glue needs besides sysfs: loading modules, resetting a device
 * (USBDEVFS_RESET), and waiting for a socket's hang-up without reading it — the last two
 * through kernel-glue/helpers/usbfs.py, because Node has no ioctl() or poll() on a raw fd.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { fstatSync } from "node:fs";
import type { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { python } from "../shared/python.js";
import { GlueError, GlueErrorCode } from "./errors.js";
import type { Sysfs } from "./sysfs.js";

/** Resolved from dist/kernel-glue/ (compiled) back to the source tree's helpers. */
export const USBFS_HELPER = fileURLToPath(new URL("../../kernel-glue/helpers/usbfs.py", import.meta.url));

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

/** USBDEVFS_RESET on /dev/bus/usb/BBB/DDD. */
export async function resetDevice(busnum: number, devnum: number): Promise<void> {
  const node = `/dev/bus/usb/${String(busnum).padStart(3, "0")}/${String(devnum).padStart(3, "0")}`;
  try {
    await promisify(execFile)(python(), [USBFS_HELPER, "reset", node]);
  } catch (e) {
    const msg = (e as { stderr?: string }).stderr?.trim() || (e as Error).message;
    throw new GlueError(GlueErrorCode.SYSFS, `reset of ${node} failed: ${msg.split("\n")[0]}`);
  }
}

export function isSocket(fd: number): boolean {
  try {
    return fstatSync(fd).isSocket();
  } catch {
    return false;
  }
}

export interface HangupWatch {
  /** resolves when the socket has hung up (or the watcher could not run) */
  done: Promise<void>;
  stop(): void;
}

/**
 * Resolve when socket `fd` of this process hangs up: the peer closed, or the kernel shut it
 * down (usbip-host / vhci-hcd teardown does SHUT_RDWR). Nothing is read from the socket.
 */
export function watchHangup(fd: number | Socket): HangupWatch {
  // the helper polls its own fd 0, a dup of ours made at spawn (a socket handed to the kernel
  // may be closed here right after)
  const stdio: [number | Socket, "ignore", "inherit"] = [fd, "ignore", "inherit"];
  let child: ChildProcess | undefined = spawn(python(), [USBFS_HELPER, "wait-hup", "0"], { stdio });
  const done = new Promise<void>((resolve) => {
    child!.on("exit", () => {
      child = undefined;
      resolve();
    });
    child!.on("error", () => {
      child = undefined;
      resolve();
    });
  });
  return {
    done,
    stop() {
      child?.kill("SIGTERM");
    },
  };
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
 * of the stream belongs to the kernel once the fd is handed over). Bounded in size and time;
 * `interrupt` (a termination signal) ends the wait at once, the helper killed quietly.
 */
export function readLineFromFd0(max: number, timeoutMs: number, interrupt?: Promise<NodeJS.Signals>): Promise<LineRead> {
  return new Promise((resolve) => {
    const child = spawn(python(), [USBFS_HELPER, "read-line", String(max)], { stdio: [0, "pipe", "inherit"] });
    const out: Buffer[] = [];
    let stopped: { end: "timeout" | "interrupted"; signal?: NodeJS.Signals } | undefined;
    const stop = (why: { end: "timeout" | "interrupted"; signal?: NodeJS.Signals }) => {
      if (stopped) return;
      stopped = why;
      child.kill("SIGKILL");
    };
    const timer = setTimeout(() => stop({ end: "timeout" }), timeoutMs);
    interrupt?.then((signal) => stop({ end: "interrupted", signal }), () => {});
    child.stdout!.on("data", (b: Buffer) => out.push(b));
    child.on("error", () => {
      clearTimeout(timer);
      resolve({ bytes: Buffer.alloc(0), end: "eof" });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      const bytes = Buffer.concat(out);
      if (stopped) resolve({ bytes, ...stopped });
      else resolve({ bytes, end: code === 0 ? "line" : code === 4 ? "long" : "eof" });
    });
  });
}
