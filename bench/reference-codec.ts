/**
 * (Bench and tests only.) The URB header through the user's chosen libraries (binary-parser to read, smart-buffer to
 * write). The decoders and encoder use the hand path in protocol/urb-header.ts instead because it is
 * measurably faster on the per-URB hot path; bench/codec.ts runs both side by side and the
 * tests check they produce identical results.
 */
import { SmartBuffer } from "smart-buffer";
import { Parser } from "binary-parser";

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

export function parseUrbHeaderWithBinaryParser(buf: Buffer): RawUrbHeader {
  return urbHeaderLayout.parse(buf) as RawUrbHeader;
}

export function writeUrbHeaderWithSmartBuffer(h: RawUrbHeader): Buffer {
  const sb = SmartBuffer.fromSize(48);
  sb.writeUInt32BE(h.command >>> 0);
  sb.writeUInt32BE(h.seqnum >>> 0);
  sb.writeUInt32BE(h.devid >>> 0);
  sb.writeUInt32BE(h.direction >>> 0);
  sb.writeUInt32BE(h.ep >>> 0);
  sb.writeUInt32BE(h.transferFlags >>> 0);
  sb.writeInt32BE(h.transferBufferLength | 0);
  sb.writeInt32BE(h.startFrame | 0);
  sb.writeInt32BE(h.numberOfPackets | 0);
  sb.writeInt32BE(h.interval | 0);
  sb.writeBuffer(h.setup.subarray(0, 8));
  return sb.toBuffer();
}
