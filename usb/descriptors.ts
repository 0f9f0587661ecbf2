/**
 * USB standard descriptors (USB 2.0 ch. 9.6): building them for device models and parsing
 * them for the userspace host (probe). Pure; all multi-byte fields little-endian.
 */
import { PeerDataError, WireCode } from "../protocol/errors.js";

export const DescType = { DEVICE: 1, CONFIG: 2, STRING: 3, INTERFACE: 4, ENDPOINT: 5, DEVICE_QUALIFIER: 6, HID: 0x21, HID_REPORT: 0x22 } as const;

export interface EndpointDesc {
  /** bit 7 = IN */
  bEndpointAddress: number;
  /** bits 0-1 transfer type (0 control, 1 iso, 2 bulk, 3 interrupt) */
  bmAttributes: number;
  wMaxPacketSize: number;
  bInterval: number;
  /** Audio Class 1.0 endpoints are 9 bytes: bRefresh and bSynchAddress follow bInterval */
  audio?: { bRefresh: number; bSynchAddress: number };
  /** class-specific descriptors right after this endpoint (e.g. the audio CS_ENDPOINT) */
  extra?: Buffer;
}

export interface InterfaceDesc {
  bInterfaceNumber: number;
  bAlternateSetting: number;
  bInterfaceClass: number;
  bInterfaceSubClass: number;
  bInterfaceProtocol: number;
  interfaceString?: string;
  /** class-specific descriptors between the interface and its endpoints (e.g. HID 0x21) */
  extra?: Buffer;
  endpoints: EndpointDesc[];
}

export interface ConfigDesc {
  bConfigurationValue: number;
  bmAttributes: number;
  /** in 2 mA units */
  bMaxPower: number;
  interfaces: InterfaceDesc[];
}

/** The fixed fields of a device descriptor, as built and as parsed (named as USB 2.0 9.6.1 names them). */
export interface DeviceFields {
  bcdUSB: number;
  bDeviceClass: number;
  bDeviceSubClass: number;
  bDeviceProtocol: number;
  bMaxPacketSize0: number;
  idVendor: number;
  idProduct: number;
  bcdDevice: number;
}

export interface DeviceDesc extends DeviceFields {
  manufacturer?: string;
  product?: string;
  serial?: string;
  configs: ConfigDesc[];
}

/** The strings of a device model, indexed as its descriptors reference them (index 0 = LANGID table). */
export function stringTable(d: DeviceDesc): string[] {
  const t = [""];
  for (const s of [d.manufacturer, d.product, d.serial, ...d.configs.flatMap((c) => c.interfaces.map((i) => i.interfaceString))]) if (s !== undefined && !t.includes(s)) t.push(s);
  return t;
}

function indexOf(table: string[], s: string | undefined): number {
  return s === undefined ? 0 : Math.max(0, table.indexOf(s));
}

export function encodeDeviceDescriptor(d: DeviceDesc): Buffer {
  const t = stringTable(d);
  const b = Buffer.alloc(18);
  b[0] = 18;
  b[1] = DescType.DEVICE;
  b.writeUInt16LE(d.bcdUSB, 2);
  b[4] = d.bDeviceClass;
  b[5] = d.bDeviceSubClass;
  b[6] = d.bDeviceProtocol;
  b[7] = d.bMaxPacketSize0;
  b.writeUInt16LE(d.idVendor, 8);
  b.writeUInt16LE(d.idProduct, 10);
  b.writeUInt16LE(d.bcdDevice, 12);
  b[14] = indexOf(t, d.manufacturer);
  b[15] = indexOf(t, d.product);
  b[16] = indexOf(t, d.serial);
  b[17] = d.configs.length;
  return b;
}

/** The full configuration descriptor set (config + interfaces + class descriptors + endpoints). */
export function encodeConfigDescriptor(d: DeviceDesc, c: ConfigDesc): Buffer {
  const t = stringTable(d);
  const parts: Buffer[] = [];
  for (const i of c.interfaces) {
    parts.push(Buffer.from([9, DescType.INTERFACE, i.bInterfaceNumber, i.bAlternateSetting, i.endpoints.length, i.bInterfaceClass, i.bInterfaceSubClass, i.bInterfaceProtocol, indexOf(t, i.interfaceString)]));
    if (i.extra) parts.push(i.extra);
    for (const e of i.endpoints) {
      const b = Buffer.alloc(e.audio ? 9 : 7);
      b[0] = b.length;
      b[1] = DescType.ENDPOINT;
      b[2] = e.bEndpointAddress;
      b[3] = e.bmAttributes;
      b.writeUInt16LE(e.wMaxPacketSize, 4);
      b[6] = e.bInterval;
      if (e.audio) {
        b[7] = e.audio.bRefresh;
        b[8] = e.audio.bSynchAddress;
      }
      parts.push(b);
      if (e.extra) parts.push(e.extra);
    }
  }
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(9);
  head[0] = 9;
  head[1] = DescType.CONFIG;
  head.writeUInt16LE(9 + body.length, 2);
  head[4] = new Set(c.interfaces.map((i) => i.bInterfaceNumber)).size;
  head[5] = c.bConfigurationValue;
  head[6] = 0;
  head[7] = c.bmAttributes;
  head[8] = c.bMaxPower;
  return Buffer.concat([head, body]);
}

/** String descriptor `index` (0: the LANGID table, English (US) only). */
export function encodeStringDescriptor(d: DeviceDesc, index: number): Buffer | undefined {
  if (index === 0) return Buffer.from([4, DescType.STRING, 0x09, 0x04]);
  const s = stringTable(d)[index];
  if (s === undefined) return undefined;
  const text = Buffer.from(s, "utf16le").subarray(0, 252);
  return Buffer.concat([Buffer.from([2 + text.length, DescType.STRING]), text]);
}

// ---- parsing (the userspace host) ------------------------------------------------------

/** A descriptor from the device side that does not parse: the byte offset in the descriptor set. */
export class DescriptorError extends PeerDataError {
  constructor(readonly offset: number, message: string) {
    super(WireCode.DESCRIPTOR, `descriptor byte ${offset}: ${message}`);
    this.name = "DescriptorError";
  }
}

export interface ParsedDevice extends DeviceFields {
  iManufacturer: number;
  iProduct: number;
  iSerial: number;
  bNumConfigurations: number;
}

export function parseDeviceDescriptor(b: Buffer): ParsedDevice {
  if (b.length < 18) throw new DescriptorError(b.length, `device descriptor is ${b.length} bytes, expected 18`);
  if (b[0] !== 18 || b[1] !== DescType.DEVICE) throw new DescriptorError(0, `not a device descriptor (bLength ${b[0]}, bDescriptorType ${b[1]})`);
  return {
    bcdUSB: b.readUInt16LE(2),
    bDeviceClass: b[4]!,
    bDeviceSubClass: b[5]!,
    bDeviceProtocol: b[6]!,
    bMaxPacketSize0: b[7]!,
    idVendor: b.readUInt16LE(8),
    idProduct: b.readUInt16LE(10),
    bcdDevice: b.readUInt16LE(12),
    iManufacturer: b[14]!,
    iProduct: b[15]!,
    iSerial: b[16]!,
    bNumConfigurations: b[17]!,
  };
}

export interface ParsedInterface extends InterfaceDesc {
  iInterface: number;
  /** other descriptors inside this interface, raw: [type, bytes] */
  others: { type: number; bytes: Buffer }[];
}
export interface ParsedConfig {
  wTotalLength: number;
  bNumInterfaces: number;
  bConfigurationValue: number;
  iConfiguration: number;
  bmAttributes: number;
  bMaxPower: number;
  interfaces: ParsedInterface[];
}

/** Parse a configuration descriptor set; every length is checked against the buffer. */
export function parseConfigDescriptor(b: Buffer): ParsedConfig {
  if (b.length < 9 || b[0]! < 9 || b[1] !== DescType.CONFIG) throw new DescriptorError(0, "not a configuration descriptor");
  const totalLength = b.readUInt16LE(2);
  if (totalLength > b.length) throw new DescriptorError(2, `wTotalLength ${totalLength} is more than the ${b.length} bytes read`);
  const cfg: ParsedConfig = { wTotalLength: totalLength, bNumInterfaces: b[4]!, bConfigurationValue: b[5]!, iConfiguration: b[6]!, bmAttributes: b[7]!, bMaxPower: b[8]!, interfaces: [] };
  let cur: ParsedInterface | undefined;
  let lastEndpoint: EndpointDesc | undefined;
  for (let p = b[0]!; p < totalLength; ) {
    const len = b[p]!;
    if (len < 2 || p + len > totalLength) throw new DescriptorError(p, `bLength ${len} runs past wTotalLength ${totalLength}`);
    const type = b[p + 1]!;
    const d = b.subarray(p, p + len);
    if (type === DescType.INTERFACE) {
      if (len < 9) throw new DescriptorError(p, `interface descriptor bLength ${len} < 9`);
      cur = { bInterfaceNumber: d[2]!, bAlternateSetting: d[3]!, bInterfaceClass: d[5]!, bInterfaceSubClass: d[6]!, bInterfaceProtocol: d[7]!, iInterface: d[8]!, endpoints: [], others: [] };
      cfg.interfaces.push(cur);
      lastEndpoint = undefined;
    } else if (type === DescType.ENDPOINT) {
      if (len < 7) throw new DescriptorError(p, `endpoint descriptor bLength ${len} < 7`);
      if (cur === undefined) throw new DescriptorError(p, "endpoint descriptor before any interface");
      lastEndpoint = { bEndpointAddress: d[2]!, bmAttributes: d[3]!, wMaxPacketSize: d.readUInt16LE(4), bInterval: d[6]!, ...(len >= 9 ? { audio: { bRefresh: d[7]!, bSynchAddress: d[8]! } } : {}) };
      cur.endpoints.push(lastEndpoint);
    } else if (cur !== undefined) {
      // class-specific descriptors belong to the endpoint they follow, else to the interface
      cur.others.push({ type, bytes: Buffer.from(d) });
      const owner: { extra?: Buffer } = lastEndpoint ?? cur;
      owner.extra = owner.extra === undefined ? Buffer.from(d) : Buffer.concat([owner.extra, d]);
    }
    p += len;
  }
  return cfg;
}

export function parseStringDescriptor(b: Buffer): string {
  if (b.length < 2 || b[1] !== DescType.STRING) throw new DescriptorError(0, "not a string descriptor");
  const len = Math.min(b[0]!, b.length);
  return b.toString("utf16le", 2, len - ((len - 2) % 2));
}

export const TRANSFER_TYPES = ["control", "iso", "bulk", "interrupt"] as const;
export function endpointType(e: EndpointDesc): (typeof TRANSFER_TYPES)[number] {
  return TRANSFER_TYPES[e.bmAttributes & 3]!;
}
