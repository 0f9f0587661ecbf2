/**
 * Limits the decoders enforce before buffering or allocating anything. The protocol itself has
 * none (lengths are s32); these are the sane caps a validating peer applies.
 */
import { MAX_ISO_PACKETS } from "./constants.js";

export interface DecodeLimits {
  /** Largest transfer_buffer_length accepted in CMD_SUBMIT. Defaults to 16 MiB. */
  maxTransferBufferLength: number;
  /** Largest number_of_packets for an ISO URB. Defaults to 1024 (USBIP_MAX_ISO_PACKETS). */
  maxIsoPackets: number;
  /** Largest device count in OP_REP_DEVLIST. Defaults to 1024. */
  maxDevices: number;
  /** Largest number of URBs (submits + unlinks) in flight. Defaults to 65536. */
  maxOutstanding: number;
  /**
   * Largest sum of transfer_buffer_length over the CMD_SUBMITs in flight. Defaults to 128 MiB.
   * The peer that answers allocates each URB's buffer when it arrives (usbip-host in the kernel,
   * libusb in a userspace backend), so without it 65536 URBs of 16 MiB — a terabyte — could be
   * asked of a USB VM. Real devices stay far below (usb-storage: one URB at a time; UAS: its
   * queue depth times the largest transfer).
   */
  maxOutstandingBytes: number;
}

export const DEFAULT_LIMITS: Readonly<DecodeLimits> = Object.freeze({
  maxTransferBufferLength: 16 * 1024 * 1024,
  maxIsoPackets: MAX_ISO_PACKETS,
  maxDevices: 1024,
  maxOutstanding: 65536,
  maxOutstandingBytes: 128 * 1024 * 1024,
});

export function resolveLimits(l: Partial<DecodeLimits> | undefined): DecodeLimits {
  return { ...DEFAULT_LIMITS, ...l };
}
