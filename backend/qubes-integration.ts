/**
 * What qubes.USB does besides moving bytes (the seed's usb-export, matched in behaviour):
 *  - QubesDB state for dom0's device widget: while exported,
 *    /qubes-usb-devices/<busid, ':' and '.' as '_'>/connected-to = remote domain (without "-dm")
 *    and /x-pid = the exporting process, then /qubes-usb-devices = "" to signal the change; on
 *    exit both keys are removed and the signal written again. Without qubesdb-write (not a Qubes
 *    VM) nothing is done.
 *  - reset on attach, when udev marks the device QUBES_USB_RESET or the qube has the
 *    usb-reset-on-attach service flag (/run/qubes-service/usb-reset-on-attach);
 *  - usbguard: allow the device by port before exporting (failures ignored).
 * Commands run through an injectable runner so unit tests can record them.
 */
import { execFile } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import path from "node:path";

export interface RunResult {
  code: number;
  stdout: string;
}
/** Runs a program; undefined when it is not installed. */
export type Runner = (cmd: string, args: string[]) => Promise<RunResult | undefined>;

/** Is `cmd` an executable in one of PATH's directories? (A spawn that fails costs a fork.) */
function onPath(cmd: string, pathVar = ""): boolean {
  if (cmd.includes("/")) return isExecutable(cmd);
  return pathVar.split(":").some((d) => d !== "" && isExecutable(path.join(d, cmd)));
}

function isExecutable(f: string): boolean {
  try {
    accessSync(f, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A runner with its own environment (PATH decides which programs are found). */
export function runnerWithEnv(env: NodeJS.ProcessEnv): Runner {
  return (cmd, args) =>
    new Promise((resolve) => {
      if (!onPath(cmd, env.PATH)) return resolve(undefined);
      execFile(cmd, args, { timeout: 10_000, env }, (err, stdout) => {
        if (err && (err as NodeJS.ErrnoException).code === "ENOENT") return resolve(undefined);
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout) });
      });
    });
}

export const defaultRunner: Runner = (cmd, args) => runnerWithEnv(process.env)(cmd, args);

export function qubesDbKey(busid: string): string {
  return `/qubes-usb-devices/${busid.replace(/[:.]/g, "_")}`;
}

/** The remote domain as dom0 knows it: $QREXEC_REMOTE_DOMAIN without a "-dm" suffix. */
export function remoteDomain(env: NodeJS.ProcessEnv = process.env): string {
  return (env.QREXEC_REMOTE_DOMAIN ?? "").replace(/-dm$/, "");
}

export async function publishExport(busid: string, domain: string, pid: number, run: Runner = defaultRunner): Promise<void> {
  const key = qubesDbKey(busid);
  await run("qubesdb-write", [`${key}/connected-to`, domain, `${key}/x-pid`, String(pid), "/qubes-usb-devices", ""]);
}

export async function unpublishExport(busid: string, run: Runner = defaultRunner): Promise<void> {
  const key = qubesDbKey(busid);
  const rm = await run("qubesdb-rm", [`${key}/connected-to`, `${key}/x-pid`]);
  if (rm === undefined) return; // not a Qubes VM
  await run("qubesdb-write", ["/qubes-usb-devices", ""]);
}

/**
 * True if the device must be reset after binding to usbip-host. Without a udev database
 * (`udevDb`: udev is not running) no device has the property, and udevadm is not asked.
 */
export async function wantsResetOnAttach(devpath: string, run: Runner = defaultRunner, serviceFlag = "/run/qubes-service/usb-reset-on-attach", udevDb = "/run/udev/data"): Promise<boolean> {
  if (existsSync(serviceFlag)) return true;
  if (!existsSync(udevDb)) return false;
  const r = await run("udevadm", ["info", "--query=property", "--value", "--property=QUBES_USB_RESET", `--path=${devpath}`]);
  return r !== undefined && r.code === 0 && r.stdout.trim() !== "" && r.stdout.trim() !== "0";
}

/** Allow the device in usbguard (if installed) by its port; failures are ignored, as in the seed. */
export async function usbguardAllow(busid: string, run: Runner = defaultRunner): Promise<void> {
  await run("usbguard", ["allow-device", `via-port "${busid}"`]);
}
