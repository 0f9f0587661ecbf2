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
}

export const DEFAULT_LIMITS: Readonly<DecodeLimits> = Object.freeze({
  maxTransferBufferLength: 16 * 1024 * 1024,
  maxIsoPackets: MAX_ISO_PACKETS,
  maxDevices: 1024,
  maxOutstanding: 65536,
});

export function resolveLimits(l: Partial<DecodeLimits> | undefined): DecodeLimits {
  return { ...DEFAULT_LIMITS, ...l };
}
