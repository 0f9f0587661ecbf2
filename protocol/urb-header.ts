/**
 * The 48-byte URB header by hand: this is the hot path (one per URB), so fields are read with
 * byte arithmetic straight from the chunk. layouts.ts has the binary-parser reference layout;
 * test/urb-header.test.ts checks both agree and bench/codec.ts shows the difference.
 *
 * Offsets (usbip_header, all u32/s32 big-endian):
 *   0x00 command  0x04 seqnum  0x08 devid  0x0c direction  0x10 ep
 *   CMD_SUBMIT: 0x14 transfer_flags 0x18 transfer_buffer_length 0x1c start_frame
 *               0x20 number_of_packets 0x24 interval 0x28 setup[8]
 *   RET_SUBMIT: 0x14 status 0x18 actual_length 0x1c start_frame 0x20 number_of_packets
 *               0x24 error_count 0x28 padding[8]
 *   CMD_UNLINK: 0x14 unlink_seqnum, 24 bytes padding
 *   RET_UNLINK: 0x14 status, 24 bytes padding
 */
import { URB_HEADER_SIZE } from "./constants.js";

/** Big-endian u32 at b[p]. */
export function u32(b: Buffer, p: number): number {
  return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
}
/** Big-endian s32 at b[p]. */
export function s32(b: Buffer, p: number): number {
  return (b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!;
}

/** Store a u32 big-endian at b[p] (any JS number; taken modulo 2^32). */
function put(b: Buffer, p: number, v: number): void {
  b[p] = v >>> 24;
  b[p + 1] = v >>> 16;
  b[p + 2] = v >>> 8;
  b[p + 3] = v;
}

/** Write the 20-byte basic header plus five u32/s32 words, then 8 bytes `tail` (or zeros). */
export function writeUrbHeader(
  command: number,
  seqnum: number,
  devid: number,
  direction: number,
  ep: number,
  w5: number,
  w6: number,
  w7: number,
  w8: number,
  w9: number,
  tail: Buffer | undefined,
): Buffer {
  const h = Buffer.allocUnsafe(URB_HEADER_SIZE);
  put(h, 0, command);
  put(h, 4, seqnum);
  put(h, 8, devid);
  put(h, 12, direction);
  put(h, 16, ep);
  put(h, 20, w5);
  put(h, 24, w6);
  put(h, 28, w7);
  put(h, 32, w8);
  put(h, 36, w9);
  if (tail === undefined) {
    put(h, 40, 0);
    put(h, 44, 0);
  } else for (let i = 0; i < 8; i++) h[40 + i] = tail[i]!;
  return h;
}
