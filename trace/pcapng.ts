/**
 * pcapng blocks (little-endian): Section Header, Interface Description, Enhanced Packet.
 * Timestamps are microseconds (the IDB default if_tsresol). Pure: bytes in, bytes out.
 */

/** LINKTYPE_USB_LINUX_MMAPPED: the 64-byte usbmon header, then data; Wireshark dissects it. */
export const LINKTYPE_USB_LINUX_MMAPPED = 220;

const pad4 = (n: number) => (4 - (n % 4)) % 4;

export function sectionHeaderBlock(): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt32LE(0x0a0d0d0a, 0);
  b.writeUInt32LE(28, 4);
  b.writeUInt32LE(0x1a2b3c4d, 8); // byte-order magic
  b.writeUInt16LE(1, 12); // major
  b.writeUInt16LE(0, 14); // minor
  b.writeBigInt64LE(-1n, 16); // section length unknown
  b.writeUInt32LE(28, 24);
  return b;
}

export function interfaceDescriptionBlock(linkType: number, snapLen = 0): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt32LE(1, 0);
  b.writeUInt32LE(20, 4);
  b.writeUInt16LE(linkType, 8);
  b.writeUInt16LE(0, 10);
  b.writeUInt32LE(snapLen, 12);
  b.writeUInt32LE(20, 16);
  return b;
}

/**
 * One Enhanced Packet Block holding `parts` (concatenated) captured at `tsMicros`; `comment`
 * (UTF-8) goes in an opt_comment option (code 1), which Wireshark shows as the packet's comment.
 */
export function enhancedPacketBlock(tsMicros: bigint, parts: readonly Buffer[], interfaceId = 0, comment?: string): Buffer[] {
  let len = 0;
  for (const p of parts) len += p.length;
  const text = comment === undefined ? undefined : Buffer.from(comment, "utf8");
  // options: opt_comment (code, length, value padded to 4), then opt_endofopt (0, 0)
  const options = text === undefined ? 0 : 4 + text.length + pad4(text.length) + 4;
  const total = 28 + len + pad4(len) + options + 4;
  const head = Buffer.alloc(28);
  head.writeUInt32LE(6, 0);
  head.writeUInt32LE(total, 4);
  head.writeUInt32LE(interfaceId, 8);
  head.writeUInt32LE(Number(tsMicros >> 32n), 12);
  head.writeUInt32LE(Number(tsMicros & 0xffffffffn), 16);
  head.writeUInt32LE(len, 20); // captured
  head.writeUInt32LE(len, 24); // original
  const tail = Buffer.alloc(pad4(len) + options + 4);
  if (text !== undefined) {
    const at = pad4(len);
    tail.writeUInt16LE(1, at);
    tail.writeUInt16LE(text.length, at + 2);
    text.copy(tail, at + 4);
  }
  tail.writeUInt32LE(total, tail.length - 4);
  return [head, ...parts, tail];
}
