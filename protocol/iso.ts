/**
 * ISO packet descriptors (16 bytes each: offset, length, actual_length, status) and the sums
 * the kernel checks (usbip_recv_iso): in CMD_SUBMIT the actual_lengths must sum to 0, in
 * RET_SUBMIT to the URB's actual_length.
 */
import { ISO_DESCRIPTOR_SIZE } from "./constants.js";
import { ErrorCode, ProtocolError } from "./errors.js";
import type { IsoPacket } from "./messages.js";
import { s32, u32 } from "./urb-header.js";

/** Decode `count` descriptors from `buf` (which holds exactly count*16 bytes). */
export function decodeIsoPackets(buf: Buffer, count: number): IsoPacket[] {
  const out: IsoPacket[] = new Array(count);
  for (let i = 0, p = 0; i < count; i++, p += ISO_DESCRIPTOR_SIZE) {
    out[i] = { offset: u32(buf, p), length: u32(buf, p + 4), actualLength: u32(buf, p + 8), status: s32(buf, p + 12) };
  }
  return out;
}

export function encodeIsoPackets(packets: readonly IsoPacket[]): Buffer {
  const b = Buffer.allocUnsafe(packets.length * ISO_DESCRIPTOR_SIZE);
  let p = 0;
  for (const d of packets) {
    b.writeUInt32BE(d.offset >>> 0, p);
    b.writeUInt32BE(d.length >>> 0, p + 4);
    b.writeUInt32BE(d.actualLength >>> 0, p + 8);
    b.writeInt32BE(d.status | 0, p + 12);
    p += ISO_DESCRIPTOR_SIZE;
  }
  return b;
}

/**
 * CMD_SUBMIT descriptors: each packet within the buffer, actual_lengths summing to 0.
 * `at` is the absolute offset of the first descriptor.
 */
export function checkSubmittedIso(packets: readonly IsoPacket[], transferBufferLength: number, at: number, seqnum: number): void {
  let sum = 0;
  for (let i = 0; i < packets.length; i++) {
    const d = packets[i]!;
    const o = at + i * ISO_DESCRIPTOR_SIZE;
    if (d.offset + d.length > transferBufferLength) {
      throw new ProtocolError(ErrorCode.ISO_DESCRIPTOR, o, `iso packet ${i}: offset ${d.offset} + length ${d.length} exceeds transfer_buffer_length ${transferBufferLength}`, seqnum);
    }
    sum += d.actualLength;
  }
  if (sum !== 0) {
    throw new ProtocolError(ErrorCode.ISO_SUM, at, `CMD_SUBMIT iso descriptors' actual_length must sum to 0 (sum is ${sum})`, seqnum);
  }
}

/** RET_SUBMIT descriptors: actual_length <= length per packet, sum equal to the URB's actual_length. */
export function checkReturnedIso(packets: readonly IsoPacket[], actualLength: number, at: number, seqnum: number): void {
  let sum = 0;
  for (let i = 0; i < packets.length; i++) {
    const d = packets[i]!;
    if (d.actualLength > d.length) {
      throw new ProtocolError(ErrorCode.ISO_DESCRIPTOR, at + i * ISO_DESCRIPTOR_SIZE + 8, `iso packet ${i}: actual_length ${d.actualLength} exceeds length ${d.length}`, seqnum);
    }
    sum += d.actualLength;
  }
  if (sum !== actualLength) {
    throw new ProtocolError(ErrorCode.ISO_SUM, at, `RET_SUBMIT iso descriptors' actual_length must sum to actual_length ${actualLength} (sum is ${sum})`, seqnum);
  }
}
