/**
 * `export --virtual hid-keyboard[:TEXT]` / `mass-storage:FILE` / `uac-microphone` / `uvc-camera`: a device
 * model served over the qrexec link (device/urb-server.ts): the handshake line, then URBs. No
 * root, no kernel module; the frontend may be vhci-hcd (import, kernel or relay mode) or our
 * own userspace host (probe, demo).
 */
import { statSync } from "node:fs";
import { HidKeyboard } from "../device/hid-keyboard.js";
import { MassStorageDevice } from "../device/mass-storage.js";
import { UacMicrophone } from "../device/uac-microphone.js";
import { UvcCamera } from "../device/uvc-camera.js";
import type { UrbDevice } from "../device/urb-device.js";
import { UsbipError, RuntimeCode, UsageError } from "../protocol/errors.js";
import { terminationSignal } from "../qrexec/agent.js";
import type { Logger } from "../shared/log.js";
import { serveOnLink } from "./serve-link.js";

/** devid of a virtual device: bus 0x7f (no real bus), device 1 */
export const VIRTUAL_DEVID = (0x7f << 16) | 1;
export const DEFAULT_TEXT = "hello from usbip-qrexec\n";

export async function openVirtual(spec: string, devid = VIRTUAL_DEVID, name?: string, typeDelayMs = 2000): Promise<UrbDevice> {
  const colon = spec.indexOf(":");
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const arg = colon < 0 ? undefined : spec.slice(colon + 1);
  if (kind === "hid-keyboard") return new HidKeyboard(devid, arg ?? DEFAULT_TEXT, typeDelayMs, name);
  if (kind === "uac-microphone") {
    if (arg !== undefined) throw new UsageError("uac-microphone takes no argument: --virtual uac-microphone");
    return new UacMicrophone(devid, name);
  }
  if (kind === "uvc-camera") {
    if (arg !== undefined) throw new UsageError("uvc-camera takes no argument: --virtual uvc-camera");
    return new UvcCamera(devid, name);
  }
  if (kind === "mass-storage") {
    if (arg === undefined || arg === "") throw new UsageError("mass-storage needs an image file: --virtual mass-storage:FILE");
    let st;
    try {
      st = statSync(arg);
    } catch {
      throw new UsageError(`mass-storage image ${arg} does not exist (create one, e.g. truncate -s 64M ${arg})`);
    }
    if (st.isDirectory()) throw new UsageError(`mass-storage image ${arg} is a directory, not an image file`);
    if (!st.isFile() && !st.isBlockDevice()) throw new UsageError(`mass-storage image ${arg} is not a regular file or block device`);
    try {
      return await MassStorageDevice.open(arg, devid, name);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EACCES" || code === "EPERM" || code === "EROFS") throw new UsbipError(RuntimeCode.INPUT, `mass-storage image ${arg}: cannot open it for reading and writing (${code === "EROFS" ? "read-only file system" : "permission denied"})`);
      throw e;
    }
  }
  throw new UsageError(`unknown virtual device "${kind}" (hid-keyboard[:TEXT], mass-storage:FILE, uac-microphone or uvc-camera)`);
}

export async function exportVirtual(spec: string, log: Logger, typeDelayMs?: number): Promise<number> {
  const device = await openVirtual(spec, VIRTUAL_DEVID, undefined, typeDelayMs);
  const signal = terminationSignal();
  try {
    return await serveOnLink(device, log, signal.promise, `virtual ${spec}`);
  } finally {
    signal.dispose();
    await device.close();
  }
}
