/**
 * `import STATEFILE` in kernel mode (the local process of qubes.USBAttach): read the handshake
 * line without reading past it and validate it; then the import lifecycle (import-lifecycle.ts)
 * with fd 0 attached to vhci-hcd after asking the agent for the single socket, until the link
 * hangs up. Every failure frees the port.
 */
import { release } from "node:os";
import { MAX_HANDSHAKE_LINE, scanHandshake } from "../protocol/handshake.js";
import { kernelSupportsSuperPlus, speedFromString, type SpeedString } from "../protocol/speed.js";
import { InterruptedError, UsbipError, PeerDataError, RuntimeCode } from "../protocol/errors.js";
import { GlueError, GlueErrorCode } from "../kernel-glue/errors.js";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { isSocket, readLineFromFd0, watchHangup } from "../kernel-glue/system.js";
import { requestSingleSocket, withTerminationSignal, type TerminationSignal } from "../qrexec/agent.js";
import { waitNotice } from "../shared/log.js";
import { qrexecRemote } from "./import-state.js";
import { runImport } from "./import-lifecycle.js";
import type { Logger } from "../shared/log.js";

export interface ImportKernelOptions {
  statefile: string;
  log: Logger;
  sysfs?: Sysfs;
  /** how long to wait for the handshake line. Defaults to 60 s. */
  handshakeTimeoutMs?: number;
  /** how long to wait for the device to enumerate. Defaults to 30 s. */
  attachTimeoutMs?: number;
}

export async function importKernel(opts: ImportKernelOptions): Promise<number> {
  const sysfs = opts.sysfs ?? new Sysfs();
  const log = opts.log;
  if (!isSocket(0)) throw new GlueError(GlueErrorCode.NOT_A_SOCKET, "fd 0 is not a socket: kernel mode needs the qrexec link as one socket (run under qrexec-client-vm, or qrexec-sim --link socket)");
  return withTerminationSignal((signal) => importKernelUntilSignal(opts, sysfs, log, signal));
}

async function importKernelUntilSignal(opts: ImportKernelOptions, sysfs: Sysfs, log: Logger, signal: TerminationSignal): Promise<number> {
  const handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 60_000;
  const notice = waitNotice(log, `waiting for the backend's handshake line (gives up after ${handshakeTimeoutMs / 1000} s)`);
  const line = await readLineFromFd0(MAX_HANDSHAKE_LINE, handshakeTimeoutMs, signal.promise).finally(notice);
  if (line.end === "interrupted") throw new InterruptedError(line.signal ?? "SIGTERM", "while waiting for the backend's handshake");
  if (line.end === "eof" && line.bytes.length === 0) throw new UsbipError(RuntimeCode.NO_HANDSHAKE, "no device info received: the connection closed before the handshake (check the backend side's log)");
  if (line.end === "timeout") throw new UsbipError(RuntimeCode.NO_HANDSHAKE, "no device info received within the handshake timeout");
  const scan = scanHandshake(line.bytes);
  if (scan.type === "need-more") throw new UsbipError(RuntimeCode.NO_HANDSHAKE, `incomplete handshake line (${line.bytes.length} bytes, no newline): connection closed`);
  if (scan.type === "error") throw new PeerDataError(scan.error.code, `invalid handshake from the backend: ${scan.error.rule}`);
  const hs = scan.handshake;
  const speed = speedFromString(hs.speed as SpeedString, kernelSupportsSuperPlus(release()));
  log.info(`handshake: devid ${hs.devid} speed ${hs.speed} (enum ${speed})`);

  return runImport({ statefile: opts.statefile, log, sysfs, mode: "kernel", remote: qrexecRemote(opts.statefile), signal, attachTimeoutMs: opts.attachTimeoutMs }, async (vhci, after) => {
    requestSingleSocket();
    const port = await vhci.attachFd(0, hs.devid, speed, after);
    const hangup = watchHangup(0);
    return {
      port,
      // the kernel owns the link: it ends when the link hangs up (the backend closed, or detach)
      untilEnd: (stop) => Promise.race([hangup.done.then(() => "link closed"), stop.then((s) => `signal ${s}`)]).finally(() => hangup.stop()),
      abort: () => hangup.stop(),
    };
  });
}

