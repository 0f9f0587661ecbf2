/**
 * struct usbip_usb_device (312 bytes) and struct usbip_usb_interface (4 bytes):
 * decode with the binary-parser layouts, encode with smart-buffer.
 */
import { SmartBuffer } from "smart-buffer";
import { BUSID_SIZE, PATH_SIZE, USB_DEVICE_RECORD_SIZE } from "./constants.js";
import { ErrorCode, ProtocolError } from "./errors.js";
import { deviceRecordLayout, interfaceRecordLayout, type RawDeviceRecord } from "./layouts.js";
import type { DeviceRecord, InterfaceRecord } from "./messages.js";

/**
 * A fixed-size C string field: bytes up to the first NUL (latin1, so every byte survives a
 * round trip). The kernel tools always NUL-terminate (they copy at most size-1 chars), so a
 * field without a NUL is refused.
 */
export function decodeCString(field: Buffer, offset: number, name: string): string {
  const end = field.indexOf(0);
  if (end < 0) {
    throw new ProtocolError(ErrorCode.BAD_STRING, offset, `${name} must be NUL-terminated within ${field.length} bytes`);
  }
  return field.toString("latin1", 0, end);
}

/** Write `s` into a zero-filled field of `size` bytes, truncated to size-1 bytes so a NUL always follows. */
export function writeCString(sb: SmartBuffer, s: string, size: number): void {
  const bytes = Buffer.from(s, "latin1").subarray(0, size - 1);
  sb.writeBuffer(bytes);
  sb.writeBuffer(Buffer.alloc(size - bytes.length));
}

/** Decode a 312-byte device record; `offset` is its absolute stream offset (for errors). */
export function decodeDeviceRecord(buf: Buffer, offset: number): DeviceRecord {
  const raw = deviceRecordLayout.parse(buf) as RawDeviceRecord;
  return {
    path: decodeCString(raw.path, offset, "usbip_usb_device.path"),
    busid: decodeCString(raw.busid, offset + PATH_SIZE, "usbip_usb_device.busid"),
    busnum: raw.busnum,
    devnum: raw.devnum,
    speed: raw.speed,
    idVendor: raw.idVendor,
    idProduct: raw.idProduct,
    bcdDevice: raw.bcdDevice,
    bDeviceClass: raw.bDeviceClass,
    bDeviceSubClass: raw.bDeviceSubClass,
    bDeviceProtocol: raw.bDeviceProtocol,
    bConfigurationValue: raw.bConfigurationValue,
    bNumConfigurations: raw.bNumConfigurations,
    bNumInterfaces: raw.bNumInterfaces,
  };
}

export function decodeInterfaceRecord(buf: Buffer): InterfaceRecord {
  const raw = interfaceRecordLayout.parse(buf) as InterfaceRecord & { padding: number };
  return {
    bInterfaceClass: raw.bInterfaceClass,
    bInterfaceSubClass: raw.bInterfaceSubClass,
    bInterfaceProtocol: raw.bInterfaceProtocol,
  };
}

/** Append a 312-byte device record. */
export function writeDeviceRecord(sb: SmartBuffer, d: DeviceRecord): void {
  const start = sb.length;
  writeCString(sb, d.path, PATH_SIZE);
  writeCString(sb, d.busid, BUSID_SIZE);
  sb.writeUInt32BE(d.busnum);
  sb.writeUInt32BE(d.devnum);
  sb.writeUInt32BE(d.speed);
  sb.writeUInt16BE(d.idVendor);
  sb.writeUInt16BE(d.idProduct);
  sb.writeUInt16BE(d.bcdDevice);
  sb.writeUInt8(d.bDeviceClass);
  sb.writeUInt8(d.bDeviceSubClass);
  sb.writeUInt8(d.bDeviceProtocol);
  sb.writeUInt8(d.bConfigurationValue);
  sb.writeUInt8(d.bNumConfigurations);
  sb.writeUInt8(d.bNumInterfaces);
  if (sb.length - start !== USB_DEVICE_RECORD_SIZE) throw new Error("device record size mismatch");
}

/** Append a 4-byte interface record (padding 0). */
export function writeInterfaceRecord(sb: SmartBuffer, i: InterfaceRecord): void {
  sb.writeUInt8(i.bInterfaceClass);
  sb.writeUInt8(i.bInterfaceSubClass);
  sb.writeUInt8(i.bInterfaceProtocol);
  sb.writeUInt8(0);
}
