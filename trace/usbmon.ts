/**
 * A USB/IP message as a Linux usbmon event (the 64-byte mmapped header of
 * LINKTYPE_USB_LINUX_MMAPPED, host byte order = little-endian here), so Wireshark's USB
 * dissectors decode the traffic (SCSI over mass storage, HID reports, descriptors).
 *   CMD_SUBMIT → 'S' (submit) with the setup packet (ep 0) and the OUT data;
 *   RET_SUBMIT → 'C' (complete) with status, actual length and the IN data;
 *   CMD_UNLINK → 'E' for the victim URB (status -ECONNRESET: an unlink request);
 *   RET_UNLINK → 'C' for the victim with the unlink's status, no data.
 * The URB id is the CMD_SUBMIT's seqnum, so Wireshark pairs submits and completions.
 * Iso URBs carry their descriptors as usbmon's mmapped API does: ndesc at byte 60, then ndesc
 * 16-byte descriptors (status, offset, length, padding) before the data, counted in len_cap;
 * a completion's length is the packet's actual_length, and iso IN data is laid out at the
 * packets' offsets (the wire packs it; usbmon sees the buffer after usbip_pad_iso).
 */
import { Direction } from "../protocol/constants.js";
import { contiguous, type IsoPacket, type Message } from "../protocol/messages.js";
import type { SubmittedUrb } from "../protocol/urb-table.js";

/** usbmon xfer_type values. */
export const XferType = { ISO: 0, INTERRUPT: 1, CONTROL: 2, BULK: 3 } as const;

export interface UrbContext {
  /** for RET_*: the CMD_SUBMIT it answers (the victim, for RET_UNLINK) */
  urb?: SubmittedUrb | undefined;
  /** the endpoint type when known (descriptors); otherwise guessed */
  xferType?: number;
}

function guessType(ep: number, iso: boolean, interval: number): number {
  if (ep === 0) return XferType.CONTROL;
  if (iso) return XferType.ISO;
  return interval > 0 ? XferType.INTERRUPT : XferType.BULK;
}

/** The usbmon header + data for one message, or undefined for OP-phase messages. */
export function usbmonEvent(m: Message, tsMicros: bigint, ctx: UrbContext = {}): Buffer[] | undefined {
  const h = Buffer.alloc(64);
  let data: Buffer | undefined;
  let descs: Buffer | undefined;
  const sec = tsMicros / 1_000_000n;
  const usec = Number(tsMicros % 1_000_000n);
  const put = (id: number, type: string, xfer: number, ep: number, dir: number, devid: number) => {
    h.writeBigUInt64LE(BigInt(id >>> 0), 0);
    h.write(type, 8, "latin1");
    h[9] = xfer;
    h[10] = (ep & 0x0f) | (dir === 1 ? 0x80 : 0);
    h[11] = devid & 0xff; // devnum
    h.writeUInt16LE((devid >>> 16) & 0xffff, 12); // busnum
    h.writeBigInt64LE(sec, 16);
    h.writeInt32LE(usec, 24);
  };
  switch (m.kind) {
    case "CMD_SUBMIT": {
      const xfer = ctx.xferType ?? guessType(m.ep, m.isoPackets !== undefined, m.interval);
      put(m.seqnum, "S", xfer, m.ep, m.direction, m.devid);
      h[14] = m.ep === 0 ? 0 : 0x2d; // setup present : '-'
      if (m.ep === 0) m.setup.copy(h, 40, 0, 8);
      else if (m.isoPackets) {
        h.writeInt32LE(0, 40);
        h.writeInt32LE(m.isoPackets.length, 44);
        descs = isoDescriptors(m.isoPackets, false);
      }
      h.writeInt32LE(-115, 28); // -EINPROGRESS, as usbmon reports a submit
      h.writeUInt32LE(m.transferBufferLength, 32);
      if (m.direction === Direction.OUT && m.payload.length > 0) data = contiguous(m.payload);
      h[15] = data ? 0 : 0x3c; // data present : '<'
      h.writeInt32LE(m.interval, 48);
      h.writeInt32LE(m.startFrame, 52);
      h.writeUInt32LE(m.transferFlags >>> 0, 56);
      break;
    }
    case "RET_SUBMIT": {
      const u = ctx.urb;
      const dir = u?.direction ?? 0;
      const ep = u?.ep ?? 0;
      const xfer = ctx.xferType ?? guessType(ep, u?.iso ?? false, 0);
      put(m.seqnum, "C", xfer, ep, dir, u?.devid ?? 0);
      h[14] = 0x2d;
      h.writeInt32LE(m.status, 28);
      h.writeUInt32LE(m.actualLength, 32);
      if (dir === 1 && m.payload.length > 0) data = m.isoPackets ? unpackIso(contiguous(m.payload), m.isoPackets, u?.transferBufferLength) : contiguous(m.payload);
      h[15] = data ? 0 : 0x3e; // data present : '>'
      if (m.isoPackets) {
        h.writeInt32LE(m.errorCount, 40);
        h.writeInt32LE(m.isoPackets.length, 44);
        descs = isoDescriptors(m.isoPackets, true);
      }
      h.writeInt32LE(m.startFrame, 52);
      break;
    }
    case "CMD_UNLINK":
    case "RET_UNLINK": {
      const u = ctx.urb;
      const victim = m.kind === "CMD_UNLINK" ? m.unlinkSeqnum : (u?.seqnum ?? m.seqnum);
      put(victim, m.kind === "CMD_UNLINK" ? "E" : "C", ctx.xferType ?? guessType(u?.ep ?? 0, u?.iso ?? false, 0), u?.ep ?? m.ep, u?.direction ?? 0, u?.devid ?? m.devid);
      h[14] = 0x2d;
      h[15] = 0x3e;
      h.writeInt32LE(m.kind === "CMD_UNLINK" ? -104 : m.status, 28);
      break;
    }
    default:
      return undefined;
  }
  h.writeUInt32LE((descs?.length ?? 0) + (data?.length ?? 0), 36); // len_cap
  if (descs) h.writeUInt32LE(descs.length / 16, 60); // ndesc
  return [h, ...(descs ? [descs] : []), ...(data ? [data] : [])];
}

/** usbmon's mon_bin_isodesc per packet: status, offset, length (actual_length on completion), padding. */
function isoDescriptors(packets: readonly IsoPacket[], completed: boolean): Buffer {
  const b = Buffer.alloc(packets.length * 16);
  packets.forEach((p, i) => {
    b.writeInt32LE(p.status | 0, i * 16);
    b.writeUInt32LE(p.offset >>> 0, i * 16 + 4);
    b.writeUInt32LE((completed ? p.actualLength : p.length) >>> 0, i * 16 + 8);
  });
  return b;
}

/**
 * The wire's packed iso IN data put back at each packet's offset (what usbip_pad_iso does). A
 * message whose descriptors do not add up to its data (a fuzzed one, traced as sent) keeps its
 * data packed as it came, so that no offset sizes the buffer.
 */
function unpackIso(packed: Buffer, packets: readonly IsoPacket[], transferBufferLength: number | undefined): Buffer {
  const end = packets.reduce((n, p) => (p.actualLength > 0 ? Math.max(n, p.offset + p.actualLength) : n), 0);
  const sum = packets.reduce((n, p) => n + p.actualLength, 0);
  if (sum !== packed.length || end > (transferBufferLength ?? 1 << 24)) return packed;
  const out = Buffer.alloc(end);
  let at = 0;
  for (const p of packets) {
    packed.copy(out, p.offset, at, at + p.actualLength);
    at += p.actualLength;
  }
  return out;
}
