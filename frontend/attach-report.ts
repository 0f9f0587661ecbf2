/**
 * Errors of an import started by qubes.USBAttach: qrexec-client-vm's own stderr is discarded,
 * so (like the seed's usb-import) the error goes to the stderr of the qubes.USBAttach call,
 * /proc/$SERVICE_ATTACH_PID/fd/2, which dom0 shows to the user — with the remote domain and a
 * hint for the error class.
 */
import { appendFileSync } from "node:fs";
import { hostname } from "node:os";

const HINTS: Record<string, string> = {
  USBIP_ERR_NO_HANDSHAKE: "the backend sent nothing: the device may be unplugged or already attached elsewhere, or usbip-qrexec is not installed in the backend qube",
  USBIP_ERR_BAD_HANDSHAKE: "the backend sent an invalid device description (an incompatible or compromised backend)",
  USBIP_ERR_NO_FREE_PORT: "every virtual USB port of this qube is in use: detach a device first",
  USBIP_ERR_NO_VHCI: "this qube's kernel lacks vhci-hcd (install the kernel's extra modules)",
  USBIP_ERR_MODPROBE: "this qube's kernel lacks vhci-hcd (install the kernel's extra modules)",
  USBIP_ERR_TIMEOUT: "the device did not enumerate: see dmesg in this qube and the backend qube",
  USBIP_ERR_ATTACH: "the kernel refused or dropped the device: see dmesg in this qube",
};

export function hintFor(code: string): string {
  return HINTS[code] ?? "see the logs of this qube and of the backend qube";
}

/** Report to the qubes.USBAttach caller's stderr; returns false if there is no such caller. */
export function reportToAttachService(code: string, message: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const pid = env.SERVICE_ATTACH_PID;
  if (pid === undefined || !/^\d+$/.test(pid)) return false;
  const domain = env.USBIP_QREXEC_REMOTE_DOMAIN ?? env.QREXEC_REMOTE_DOMAIN ?? "the backend qube";
  const line = `usbip-qrexec: attaching a device from ${domain} to ${hostname()} failed: ${message} (hint: ${hintFor(code)})\n`;
  try {
    appendFileSync(`/proc/${pid}/fd/2`, line);
    return true;
  } catch {
    return false;
  }
}
