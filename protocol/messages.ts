/**
 * Every USB/IP message as one discriminated union keyed by `kind`.
 * Field names are camelCase of the kernel struct names; USB descriptor fields keep their USB names.
 *
 * Payload ownership: `payload` is a list of segments (usually one). Segments produced by the
 * decoders are views into the chunks that were pushed; they stay valid as long as the caller
 * does not modify those chunks. The decoders never write into or compact a pushed chunk.
 */
import type { Direction } from "./constants.js";

/** One record of struct usbip_usb_interface (4 bytes, the 4th is padding). */
export interface InterfaceRecord {
  bInterfaceClass: number;
  bInterfaceSubClass: number;
  bInterfaceProtocol: number;
}

/** struct usbip_usb_device (312 bytes); `interfaces` only in OP_REP_DEVLIST. */
export interface DeviceRecord {
  path: string;
  busid: string;
  busnum: number;
  devnum: number;
  /** enum usb_device_speed */
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

export interface ListedDevice extends DeviceRecord {
  /** bNumInterfaces records follow the device in OP_REP_DEVLIST. */
  interfaces: InterfaceRecord[];
}

export interface OpReqDevlist {
  kind: "OP_REQ_DEVLIST";
}
export interface OpRepDevlist {
  kind: "OP_REP_DEVLIST";
  status: number;
  devices: ListedDevice[];
}
export interface OpReqImport {
  kind: "OP_REQ_IMPORT";
  busid: string;
}
export interface OpRepImport {
  kind: "OP_REP_IMPORT";
  status: number;
  /** Present exactly when status is 0 (the 320-byte form). */
  device?: DeviceRecord;
}

/** struct usbip_iso_packet_descriptor; `status` is a signed errno. */
export interface IsoPacket {
  offset: number;
  length: number;
  actualLength: number;
  status: number;
}

export interface CmdSubmit {
  kind: "CMD_SUBMIT";
  seqnum: number;
  devid: number;
  direction: Direction;
  ep: number;
  transferFlags: number;
  transferBufferLength: number;
  startFrame: number;
  /** ISO packet count; 0 for non-ISO (0xffffffff is accepted on input and normalised to 0). */
  numberOfPackets: number;
  interval: number;
  /** The raw 8-byte setup packet (little-endian USB fields). */
  setup: Buffer;
  /** OUT: transferBufferLength bytes in segments; IN: empty. */
  payload: Buffer[];
  /** ISO endpoints only: numberOfPackets descriptors. */
  isoPackets?: IsoPacket[];
}

export interface RetSubmit {
  kind: "RET_SUBMIT";
  seqnum: number;
  /** devid/direction/ep are 0 on the wire (stub setup_base_pdu); decoders keep the raw wire values. */
  devid: number;
  direction: number;
  ep: number;
  status: number;
  actualLength: number;
  startFrame: number;
  numberOfPackets: number;
  errorCount: number;
  /** IN: actualLength bytes (ISO IN: packed, gaps removed); OUT: empty. */
  payload: Buffer[];
  isoPackets?: IsoPacket[];
}

export interface CmdUnlink {
  kind: "CMD_UNLINK";
  seqnum: number;
  devid: number;
  direction: Direction;
  ep: number;
  /** seqnum of the CMD_SUBMIT to cancel. */
  unlinkSeqnum: number;
}

export interface RetUnlink {
  kind: "RET_UNLINK";
  seqnum: number;
  /** Raw wire values, normally 0. */
  devid: number;
  direction: number;
  ep: number;
  /** -ECONNRESET if the URB was cancelled, 0 if it had already completed. */
  status: number;
}

/** The qrexec link's first line, backend → frontend: "<devid> <speed>[ <reserved>]\n". */
export interface Handshake {
  kind: "HANDSHAKE";
  devid: number;
  /** The sysfs speed string as sent: 1.5, 12, 480, 53.3-480, 5000, 10000 or 20000. */
  speed: string;
  /** Third field, reserved for future use; tolerated and kept. */
  reserved?: string;
}

export type OpMessage = OpReqDevlist | OpRepDevlist | OpReqImport | OpRepImport;
export type UrbMessage = CmdSubmit | RetSubmit | CmdUnlink | RetUnlink;
export type ClientMessage = OpReqDevlist | OpReqImport | CmdSubmit | CmdUnlink;
export type ServerMessage = OpRepDevlist | OpRepImport | RetSubmit | RetUnlink | Handshake;
export type Message = ClientMessage | ServerMessage;
export type MessageKind = Message["kind"];

/** Total payload bytes of a message's segments. */
export function payloadLength(segments: readonly Buffer[]): number {
  let n = 0;
  for (const s of segments) n += s.length;
  return n;
}

/** The payload as one Buffer: the segment itself when there is one, a copy when there are several. */
export function contiguous(segments: readonly Buffer[]): Buffer {
  if (segments.length === 1) return segments[0]!;
  return Buffer.concat(segments as Buffer[]);
}

/** The payload after its first n bytes, as views of the same segments. */
export function skipPayload(segments: readonly Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  for (const s of segments) {
    if (n >= s.length) n -= s.length;
    else {
      out.push(n > 0 ? s.subarray(n) : s);
      n = 0;
    }
  }
  return out;
}

/** Exhaustiveness helper for `switch (msg.kind)`. */
export function assertNever(x: never): never {
  throw new Error(`unreachable: ${JSON.stringify(x)}`);
}
