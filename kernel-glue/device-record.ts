/** The usbipd device record (struct usbip_usb_device + interfaces) of a local device, from sysfs. */
import { release } from "node:os";
import type { ListedDevice } from "../protocol/messages.js";
import { isSpeedString, kernelSupportsSuperPlus, speedFromString } from "../protocol/speed.js";
import type { Sysfs } from "./sysfs.js";
import { describeDevice } from "./usb-devices.js";

export function recordFromSysfs(sysfs: Sysfs, busid: string): ListedDevice {
  const info = describeDevice(sysfs, busid);
  const d = `bus/usb/devices/${busid}`;
  const hex = (f: string) => Number.parseInt(sysfs.tryRead(`${d}/${f}`) ?? "0", 16) || 0;
  const dec = (f: string) => Number.parseInt(sysfs.tryRead(`${d}/${f}`) ?? "0", 10) || 0;
  const real = sysfs.realPath(d) ?? `/sys/bus/usb/devices/${busid}`;
  return {
    // usbipd sends the udev syspath (/sys/devices/...)
    path: real.startsWith(sysfs.root) ? `/sys${real.slice(sysfs.root.length)}` : real,
    busid,
    busnum: info.busnum,
    devnum: info.devnum,
    speed: isSpeedString(info.speed) ? speedFromString(info.speed, kernelSupportsSuperPlus(release())) : 0,
    idVendor: info.idVendor,
    idProduct: info.idProduct,
    bcdDevice: hex("bcdDevice"),
    bDeviceClass: info.bDeviceClass,
    bDeviceSubClass: hex("bDeviceSubClass"),
    bDeviceProtocol: hex("bDeviceProtocol"),
    bConfigurationValue: dec("bConfigurationValue"),
    bNumConfigurations: dec("bNumConfigurations"),
    bNumInterfaces: info.interfaces.length,
    interfaces: info.interfaces.map((i) => ({ bInterfaceClass: i.bInterfaceClass, bInterfaceSubClass: i.bInterfaceSubClass, bInterfaceProtocol: i.bInterfaceProtocol })),
  };
}
