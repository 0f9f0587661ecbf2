/**
 * Two layouts of one iso URB's buffer. A USB/IP CMD_SUBMIT names an offset and a length per
 * packet (the HCD's iso_frame_desc); usbfs (USBDEVFS_SUBMITURB) takes lengths only and lays the
 * packets back to back, packet i at the sum of the lengths before it. snd-usb-audio and
 * uvcvideo submit back-to-back offsets too, but nothing obliges a driver to.
 */
export interface IsoSlot {
  offset: number;
  length: number;
}

/** Where each packet lies in the back-to-back layout. */
export function packedOffsets(packets: readonly IsoSlot[]): number[] {
  const out: number[] = [];
  let at = 0;
  for (const p of packets) {
    out.push(at);
    at += p.length;
  }
  return out;
}

/** The back-to-back buffer usbfs sends for an OUT URB, gathered from `out` at the packets' offsets (bytes past `out`'s end read as 0). */
export function gatherIsoOut(packets: readonly IsoSlot[], out: Buffer): Buffer {
  const at = packedOffsets(packets);
  const buf = Buffer.alloc(packets.reduce((n, p) => n + p.length, 0));
  packets.forEach((p, i) => {
    if (p.offset < out.length) out.copy(buf, at[i]!, p.offset, Math.min(out.length, p.offset + p.length));
  });
  return buf;
}

/**
 * An IN URB's data as the HCD leaves it: packet i's received bytes at its submitted offset in a
 * buffer of transfer_buffer_length. The back-to-back buffer is returned as it is when the
 * offsets already are back to back.
 */
export function scatterIsoIn(packets: readonly IsoSlot[], packed: Buffer, actual: readonly number[], transferBufferLength: number): Buffer {
  const at = packedOffsets(packets);
  if (packets.every((p, i) => p.offset === at[i])) return packed;
  const data = Buffer.alloc(transferBufferLength);
  packets.forEach((p, i) => {
    const n = Math.max(0, Math.min(actual[i] ?? 0, p.length, transferBufferLength - p.offset));
    packed.copy(data, p.offset, at[i]!, at[i]! + n);
  });
  return data;
}
