/**
 * sysfs `speed` strings (drivers/usb/core/sysfs.c speed_show) and enum usb_device_speed.
 * vhci-hcd's attach accepts SUPER_PLUS (6) only on recent kernels; like the seed's usb-import,
 * 10000/20000 map to 6 only when the caller says the kernel supports it (>= 6.12), else to 5.
 */
import { UsbSpeed } from "./constants.js";

/** The speed strings a handshake may carry, in the seed's order. */
export const SPEED_STRINGS = ["1.5", "12", "480", "53.3-480", "5000", "10000", "20000"] as const;
export type SpeedString = (typeof SPEED_STRINGS)[number];

export function isSpeedString(s: string): s is SpeedString {
  return (SPEED_STRINGS as readonly string[]).includes(s);
}

/** Map a sysfs speed string to the enum vhci-hcd's attach expects. */
export function speedFromString(s: SpeedString, superPlusSupported: boolean): UsbSpeed {
  switch (s) {
    case "1.5":
      return UsbSpeed.LOW;
    case "12":
      return UsbSpeed.FULL;
    case "480":
      return UsbSpeed.HIGH;
    case "53.3-480":
      return UsbSpeed.WIRELESS;
    case "5000":
      return UsbSpeed.SUPER;
    case "10000":
    case "20000":
      return superPlusSupported ? UsbSpeed.SUPER_PLUS : UsbSpeed.SUPER;
  }
}

/** The sysfs string for an enum value (FULL and UNKNOWN both print "12", as the kernel does). */
export function speedToString(speed: number): SpeedString {
  switch (speed) {
    case UsbSpeed.LOW:
      return "1.5";
    case UsbSpeed.HIGH:
      return "480";
    case UsbSpeed.WIRELESS:
      return "53.3-480";
    case UsbSpeed.SUPER:
      return "5000";
    case UsbSpeed.SUPER_PLUS:
      return "10000";
    default:
      return "12";
  }
}

/** True when a kernel release string (uname -r) is >= 6.12, the seed's SUPER_PLUS gate. */
export function kernelSupportsSuperPlus(release: string): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (m === null) return false;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  return major > 6 || (major === 6 && minor >= 12);
}
