/**
 * Fixed-layout structs of USB/IP as binary-parser definitions (all big-endian, packed).
 * These are the OP phase's device and interface records. The 48-byte URB header, which is on
 * the hot path, is parsed by hand in urb-header.ts; its binary-parser reference, which the hand
 * path is tested and benchmarked against, is bench/reference-codec.ts.
 */
import { Parser } from "binary-parser";
import { BUSID_SIZE, PATH_SIZE } from "./constants.js";

/** struct usbip_usb_device (312 bytes); strings are cut at the first NUL by the caller. */
export const deviceRecordLayout = new Parser()
  .buffer("path", { length: PATH_SIZE })
  .buffer("busid", { length: BUSID_SIZE })
  .uint32be("busnum")
  .uint32be("devnum")
  .uint32be("speed")
  .uint16be("idVendor")
  .uint16be("idProduct")
  .uint16be("bcdDevice")
  .uint8("bDeviceClass")
  .uint8("bDeviceSubClass")
  .uint8("bDeviceProtocol")
  .uint8("bConfigurationValue")
  .uint8("bNumConfigurations")
  .uint8("bNumInterfaces");

/** struct usbip_usb_interface (4 bytes, last one padding). */
export const interfaceRecordLayout = new Parser()
  .uint8("bInterfaceClass")
  .uint8("bInterfaceSubClass")
  .uint8("bInterfaceProtocol")
  .uint8("padding");

export interface RawDeviceRecord {
  path: Buffer;
  busid: Buffer;
  busnum: number;
  devnum: number;
  speed: number;
  idVendor: number;
  idProduct: number;
  bcdDevice: number;
  bDeviceClass: number;
  bDeviceSubClass: number;
  bDeviceProtocol: number;
  bConfigurationValue: number;
  bNumConfigurations: number;
  bNumInterfaces: number;
}
