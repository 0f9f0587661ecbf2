/**
 * Fixed-layout structs of USB/IP as binary-parser definitions (all big-endian, packed).
 * These are used for the OP phase and ISO descriptors. The 48-byte URB header, which is on
 * the hot path, is parsed by hand in urb-header.ts; `urbHeaderLayout` here is kept as the
 * reference the hand path is tested and benchmarked against (bench/codec.ts).
 */
import { Parser } from "binary-parser";
import { BUSID_SIZE, PATH_SIZE } from "./constants.js";

/** struct op_common (8 bytes). */
export const opCommonLayout = new Parser()
  .uint16be("version")
  .uint16be("code")
  .uint32be("status");

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

/** struct usbip_iso_packet_descriptor (16 bytes); status is a signed errno. */
export const isoDescriptorLayout = new Parser()
  .uint32be("offset")
  .uint32be("length")
  .uint32be("actualLength")
  .int32be("status");

/** usbip_header (48 bytes): basic header + the CMD_SUBMIT view of the union (reference layout). */
export const urbHeaderLayout = new Parser()
  .uint32be("command")
  .uint32be("seqnum")
  .uint32be("devid")
  .uint32be("direction")
  .uint32be("ep")
  .uint32be("transferFlags")
  .int32be("transferBufferLength")
  .int32be("startFrame")
  .int32be("numberOfPackets")
  .int32be("interval")
  .buffer("setup", { length: 8 });

export interface OpCommon {
  version: number;
  code: number;
  status: number;
}
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
export interface RawUrbHeader {
  command: number;
  seqnum: number;
  devid: number;
  direction: number;
  ep: number;
  transferFlags: number;
  transferBufferLength: number;
  startFrame: number;
  numberOfPackets: number;
  interval: number;
  setup: Buffer;
}
