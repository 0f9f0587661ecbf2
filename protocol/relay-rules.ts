/**
 * The checks a validating relay makes on top of the stream decoders (which already enforce
 * framing, seqnum bookkeeping, actual_length <= transfer_buffer_length, the ISO packet count and
 * sums, and payload direction). Pure: the relay passes in what it knows.
 *
 * Toward the frontend kernel (RET_* from an untrusted backend; vhci-hcd trusts them):
 *   status from an allow-list of errno values, error_count within 0..number_of_packets,
 *   each ISO descriptor's offset/length equal to what was submitted.
 * Toward the backend kernel (CMD_* from an untrusted frontend; usbip-host is fragile):
 *   devid of the exported device, endpoint present in the current configuration with that
 *   direction and type, control transfer_buffer_length equal to the setup's wLength,
 *   unlink of a seqnum that was submitted, and on an iso endpoint what usb_submit_urb refuses
 *   (usbip-host answers a refused submit by resetting the connection): 0 packets (-EINVAL), a
 *   packet longer than the endpoint moves per service interval (-EMSGSIZE), and descriptor
 *   lengths summing above transfer_buffer_length. More than 1024 packets, and packets outside
 *   the buffer, are the stream decoder's (USBIP_MAX_ISO_PACKETS, usbip_recv_iso).
 */
import { Errno, ISO_DESCRIPTOR_SIZE, URB_HEADER_SIZE } from "./constants.js";
import { ErrorCode, ProtocolError } from "./errors.js";
import type { CmdSubmit, CmdUnlink, RetSubmit, RetUnlink } from "./messages.js";
import type { EndpointType } from "./client-decoder.js";
import type { SubmittedUrb } from "./urb-table.js";

/** Status values a RET may carry (negative errno, asm-generic numbering; 0 = success). */
export const ALLOWED_STATUS: ReadonlySet<number> = new Set([0, ...Object.values(Errno)]);

export function checkRetSubmit(msg: RetSubmit, urb: SubmittedUrb, at: number): void {
  if (!ALLOWED_STATUS.has(msg.status)) {
    throw new ProtocolError(ErrorCode.STATUS_NOT_ALLOWED, at + 20, `status ${msg.status} is not an errno a USB transfer can end with`, msg.seqnum);
  }
  if (msg.errorCount < 0 || msg.errorCount > msg.numberOfPackets) {
    throw new ProtocolError(ErrorCode.ERROR_COUNT, at + 36, `error_count ${msg.errorCount} outside 0..number_of_packets (${msg.numberOfPackets})`, msg.seqnum);
  }
  if (msg.isoPackets !== undefined && urb.isoPackets !== undefined) {
    const descAt = at + URB_HEADER_SIZE + (urb.direction === 1 ? msg.actualLength : 0);
    for (let i = 0; i < msg.isoPackets.length; i++) {
      const got = msg.isoPackets[i]!;
      const sent = urb.isoPackets[i]!;
      if (got.offset !== sent.offset || got.length !== sent.length) {
        throw new ProtocolError(ErrorCode.ISO_MISMATCH, descAt + i * ISO_DESCRIPTOR_SIZE, `iso packet ${i}: offset/length ${got.offset}/${got.length} differ from the submitted ${sent.offset}/${sent.length}`, msg.seqnum);
      }
      if (!ALLOWED_STATUS.has(got.status)) {
        throw new ProtocolError(ErrorCode.STATUS_NOT_ALLOWED, descAt + i * ISO_DESCRIPTOR_SIZE + 12, `iso packet ${i}: status ${got.status} is not an allowed errno`, msg.seqnum);
      }
    }
  }
}

export function checkRetUnlink(msg: RetUnlink, at: number): void {
  if (!ALLOWED_STATUS.has(msg.status)) {
    throw new ProtocolError(ErrorCode.STATUS_NOT_ALLOWED, at + 20, `RET_UNLINK status ${msg.status} is not an allowed errno`, msg.seqnum);
  }
}

/** What the backend relay knows of the exported device. */
export interface DeviceView {
  devid: number;
  /** the type of endpoint `ep` in `direction` (1 = IN) in the current configuration, if present */
  endpoint(ep: number, direction: number): EndpointType | undefined;
  /**
   * An iso endpoint's bytes per service interval (usb_submit_urb's `max`: wMaxPacketSize's
   * size bits × its high-bandwidth multiplier at high speed; × burst × mult from the companion
   * at SuperSpeed), when known.
   */
  isoPacketLimit?(ep: number, direction: number): number | undefined;
}

export function checkCmdSubmit(msg: CmdSubmit, dev: DeviceView, at: number): void {
  if (msg.devid !== dev.devid) throw new ProtocolError(ErrorCode.WRONG_DEVID, at + 8, `devid ${msg.devid} is not the exported device's ${dev.devid}`, msg.seqnum);
  if (msg.ep !== 0 && dev.endpoint(msg.ep, msg.direction) === undefined) {
    throw new ProtocolError(ErrorCode.NO_SUCH_ENDPOINT, at + 16, `endpoint ${msg.ep} ${msg.direction === 1 ? "IN" : "OUT"} does not exist in the device's current configuration`, msg.seqnum);
  }
  if (msg.ep === 0) {
    const wLength = msg.setup.readUInt16LE(6);
    if (wLength !== msg.transferBufferLength) {
      throw new ProtocolError(ErrorCode.CONTROL_LENGTH, at + 24, `control transfer_buffer_length ${msg.transferBufferLength} differs from the setup's wLength ${wLength} (usb_submit_urb: -EBADR, connection reset)`, msg.seqnum);
    }
  } else if (dev.endpoint(msg.ep, msg.direction) === "iso") checkIsoSubmit(msg, dev, at);
}

/** An iso CMD_SUBMIT as usb_submit_urb will judge it (its refusal resets usbip-host's connection). */
function checkIsoSubmit(msg: CmdSubmit, dev: DeviceView, at: number): void {
  const packets = msg.isoPackets ?? [];
  if (packets.length === 0) {
    throw new ProtocolError(ErrorCode.PACKET_COUNT, at + 32, `number_of_packets 0 on iso endpoint ${msg.ep} ${msg.direction === 1 ? "IN" : "OUT"} (usb_submit_urb: -EINVAL, connection reset)`, msg.seqnum);
  }
  const descAt = at + URB_HEADER_SIZE + (msg.direction === 0 ? msg.transferBufferLength : 0);
  const limit = dev.isoPacketLimit?.(msg.ep, msg.direction);
  let sum = 0;
  for (let i = 0; i < packets.length; i++) {
    const len = packets[i]!.length;
    if (limit !== undefined && len > limit) {
      throw new ProtocolError(ErrorCode.ISO_PACKET_LENGTH, descAt + i * ISO_DESCRIPTOR_SIZE + 4, `iso packet ${i}: length ${len} exceeds the endpoint's ${limit} bytes per interval (usb_submit_urb: -EMSGSIZE, connection reset)`, msg.seqnum);
    }
    sum += len;
  }
  if (sum > msg.transferBufferLength) {
    throw new ProtocolError(ErrorCode.ISO_DESCRIPTOR, descAt, `iso packet lengths sum to ${sum}, above transfer_buffer_length ${msg.transferBufferLength}`, msg.seqnum);
  }
}

export function checkCmdUnlink(msg: CmdUnlink, dev: DeviceView, known: (seqnum: number) => boolean, at: number): void {
  if (msg.devid !== dev.devid) throw new ProtocolError(ErrorCode.WRONG_DEVID, at + 8, `devid ${msg.devid} is not the exported device's ${dev.devid}`, msg.seqnum);
  if (!known(msg.unlinkSeqnum)) throw new ProtocolError(ErrorCode.UNKNOWN_VICTIM, at + 20, `CMD_UNLINK of seqnum ${msg.unlinkSeqnum}, which was never submitted`, msg.seqnum);
}
