/** Errors of the kernel glue: a stable code and one line a user can act on. */
import { UsbipError } from "../protocol/errors.js";

export const GlueErrorCode = {
  SYSFS: "USBIP_ERR_SYSFS",
  NO_VHCI: "USBIP_ERR_NO_VHCI",
  OLD_KERNEL: "USBIP_ERR_OLD_KERNEL",
  NO_FREE_PORT: "USBIP_ERR_NO_FREE_PORT",
  ATTACH: "USBIP_ERR_ATTACH",
  TIMEOUT: "USBIP_ERR_TIMEOUT",
  NO_DEVICE: "USBIP_ERR_NO_DEVICE",
  BAD_DEVICE: "USBIP_ERR_BAD_DEVICE",
  AMBIGUOUS_DEVICE: "USBIP_ERR_AMBIGUOUS_DEVICE",
  NOT_AVAILABLE: "USBIP_ERR_NOT_AVAILABLE",
  ALREADY_EXPORTED: "USBIP_ERR_ALREADY_EXPORTED",
  NO_USBIP_HOST: "USBIP_ERR_NO_USBIP_HOST",
  MODPROBE: "USBIP_ERR_MODPROBE",
  NOT_A_SOCKET: "USBIP_ERR_NOT_A_SOCKET",
} as const;

export class GlueError extends UsbipError {
  constructor(code: (typeof GlueErrorCode)[keyof typeof GlueErrorCode], message: string) {
    super(code, message);
    this.name = "GlueError";
  }
}
