/**
 * The orphan guard: a long-lived command (import, export, connect) that is killed with SIGKILL
 * or crashes cannot clean up after itself, and what it leaves is exactly what makes a
 * passthrough worse than none: a used vhci-hcd port, a stale statefile, a device stuck on
 * usbip-host with no driver. So each such command starts a tiny guard (a /bin/sh script, in
 * its own session so terminal and group signals do not reach it) holding the read end of a
 * pipe only we write to. When this process ends, normally or not, the pipe reaches EOF; a
 * normal end disarms the guard first (SIGTERM, which ends the shell quietly), any other end
 * makes the guard run the cleanup command (`usbip-qrexec detach ... --orphan-of PID`), with
 * SIGINT and SIGHUP still ignored.
 */
import { spawn } from "node:child_process";
import type net from "node:net";
import path from "node:path";

/** $0 names it in ps (the VM suite looks for leftovers of ours by "usbip-qrexec"); "$@" is the cleanup command */
const GUARD_SH = [
  "trap '' INT HUP",
  "while read -r line <&3; do :; done",
  'printf "usbip-qrexec: guard: process %s ended without cleaning up; running: %s\\n" "$USBIP_QREXEC_GUARDED_PID" "$*" >&2',
  'exec "$@"',
].join("\n");

export interface OrphanGuard {
  /** our own cleanup is done: end the guard without it doing anything */
  disarm(): void;
}

/** Start a guard that runs `cleanup` (argv) if this process dies without calling disarm(). */
export function startOrphanGuard(cleanup: string[]): OrphanGuard {
  const child = spawn("/bin/sh", ["-c", GUARD_SH, "usbip-qrexec-guard", ...cleanup], {
    stdio: ["ignore", "ignore", "inherit", "pipe"],
    detached: true,
    env: { ...process.env, USBIP_QREXEC_GUARDED_PID: String(process.pid) },
  });
  child.on("error", () => {}); // no /bin/sh: no guard (the command's own cleanup still runs)
  child.unref();
  (child.stdio[3] as net.Socket | null)?.unref();
  let armed = true;
  return {
    disarm() {
      if (!armed) return;
      armed = false;
      child.kill("SIGTERM");
    },
  };
}

/** The argv that runs this same CLI again (for the guard's cleanup command). */
export function selfCommand(...args: string[]): string[] {
  return [process.execPath, process.argv[1]!, ...args];
}

/** Guard an import: on a crash the port recorded in `statefile` is detached and the file removed. */
export function guardImport(statefile: string): OrphanGuard {
  return startOrphanGuard(selfCommand("detach", "--statefile", path.resolve(statefile), "--orphan-of", String(process.pid)));
}

/** Guard an export: on a crash the device goes back to its own driver (the zombie-device fix). */
export function guardExport(busid: string): OrphanGuard {
  return startOrphanGuard(selfCommand("detach", "--busid", busid, "--orphan-of", String(process.pid)));
}
