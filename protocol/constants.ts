/**
 * Wire constants of USB/IP (Linux tools/usb/usbip and drivers/usb/usbip).
 * Every integer on the wire is big-endian; the 8-byte USB setup packet is the only
 * exception (copied verbatim, little-endian as on the USB wire).
 */

/** USBIP_VERSION: first u16 of every OP-phase message. */
export const USBIP_VERSION = 0x0111;

/** op_common is 8 bytes: version u16, code u16, status u32. */
export const OP_HEADER_SIZE = 8;
/** struct usbip_usb_device is 312 (0x138) bytes, packed. */
export const USB_DEVICE_RECORD_SIZE = 0x138;
/** Offset of bNumInterfaces inside usbip_usb_device (Wireshark reads it there to frame DEVLIST). */
export const DEVICE_NUM_INTERFACES_OFFSET = 0x137;
/** struct usbip_usb_interface is 4 bytes: class, subclass, protocol, padding. */
export const USB_INTERFACE_RECORD_SIZE = 4;
/** OP_REQ_IMPORT carries a 32-byte NUL-terminated busid (SYSFS_BUS_ID_SIZE). */
export const BUSID_SIZE = 32;
/** usbip_usb_device.path is 256 bytes (SYSFS_PATH_MAX). */
export const PATH_SIZE = 256;
/** usbip_header: 20-byte basic header + 28-byte command union, for all four URB commands. */
export const URB_HEADER_SIZE = 48;
/** struct usbip_iso_packet_descriptor: offset, length, actual_length, status (u32 each). */
export const ISO_DESCRIPTOR_SIZE = 16;
/** USBIP_MAX_ISO_PACKETS in usbip_common.h: the kernel's own upper bound. */
export const MAX_ISO_PACKETS = 1024;

/** op_common.code: OP_REQUEST (0x8000) | op for requests, OP_REPLY (0x0000) | op for replies. */
export const OpCode = {
  REQ_DEVLIST: 0x8005,
  REP_DEVLIST: 0x0005,
  REQ_IMPORT: 0x8003,
  REP_IMPORT: 0x0003,
} as const;
export type OpCode = (typeof OpCode)[keyof typeof OpCode];

/** op_common.status values sent by usbipd (libsrc/usbip_common.h ST_*). */
export const OpStatus = {
  OK: 0x00,
  NA: 0x01,
  DEV_BUSY: 0x02,
  DEV_ERR: 0x03,
  NODEV: 0x04,
  ERROR: 0x05,
} as const;

/** usbip_header_basic.command (u32). */
export const UrbCommand = {
  CMD_SUBMIT: 1,
  CMD_UNLINK: 2,
  RET_SUBMIT: 3,
  RET_UNLINK: 4,
} as const;

/** usbip_header_basic.direction: USBIP_DIR_OUT 0, USBIP_DIR_IN 1. */
export const Direction = { OUT: 0, IN: 1 } as const;
export type Direction = (typeof Direction)[keyof typeof Direction];

/** USBIP_URB_* transfer_flags (include/uapi/linux/usbip.h). */
export const TransferFlag = {
  SHORT_NOT_OK: 0x0000_0001,
  ISO_ASAP: 0x0000_0002,
  NO_TRANSFER_DMA_MAP: 0x0000_0004,
  ZERO_PACKET: 0x0000_0040,
  NO_INTERRUPT: 0x0000_0080,
  FREE_BUFFER: 0x0000_0100,
  DIR_IN: 0x0000_0200,
  DMA_MAP_SG: 0x0004_0000,
} as const;

/** enum usb_device_speed (include/uapi/linux/usb/ch9.h). */
export const UsbSpeed = {
  UNKNOWN: 0,
  LOW: 1,
  FULL: 2,
  HIGH: 3,
  WIRELESS: 4,
  SUPER: 5,
  SUPER_PLUS: 6,
} as const;
export type UsbSpeed = (typeof UsbSpeed)[keyof typeof UsbSpeed];

/** Negative Linux errno values as carried in RET_SUBMIT/RET_UNLINK status (asm-generic numbering). */
export const Errno = {
  ENOENT: -2,
  EIO: -5,
  EXDEV: -18,
  ENODEV: -19,
  EINVAL: -22,
  EPIPE: -32,
  ETIME: -62,
  EPROTO: -71,
  EOVERFLOW: -75,
  EILSEQ: -84,
  EMSGSIZE: -90,
  ECONNRESET: -104,
  ESHUTDOWN: -108,
  ETIMEDOUT: -110,
  EREMOTEIO: -121,
} as const;

const errnoNames = new Map<number, string>(Object.entries(Errno).map(([k, v]) => [v, k]));

/** "-EPIPE" style name of a status value, or the decimal number when unknown. */
export function statusName(status: number): string {
  if (status === 0) return "0";
  const name = errnoNames.get(status);
  return name === undefined ? String(status) : `-${name}`;
}

/** Name of an op_common.status value (usbip_op_common_status_string). */
export function opStatusName(status: number): string {
  for (const [k, v] of Object.entries(OpStatus)) if (v === status) return `ST_${k}`;
  return `status ${status}`;
}
