/**
 * A message as the fuzzing stage sent it, for the trace of a `--no-validate` run (what the
 * kernel received, with no relay after the stage to decode it). The mutator changes header
 * words, payload bytes and iso descriptors in place, cuts a message short, or sends it twice or
 * not at all; it never adds bytes. So the bytes sent are read back with the honest message's
 * framing, not by a decoder's rules (a mutated message breaks them on purpose):
 *   - the header words from the bytes sent; a message cut inside its 48-byte header keeps the
 *     honest words past the cut (the kernel reads the next message's bytes there; the packet's
 *     comment says where the cut was);
 *   - the payload and the iso descriptors from the bytes sent at the honest message's offsets,
 *     as many whole ones as were sent.
 * Pure: bytes in, a message out.
 */
import { ISO_DESCRIPTOR_SIZE, URB_HEADER_SIZE, type Direction } from "../protocol/constants.js";
import { decodeIsoPackets } from "../protocol/iso.js";
import { payloadLength, type UrbMessage } from "../protocol/messages.js";
import { s32, u32 } from "../protocol/urb-header.js";

/** `sent` (the bytes that went out) read as the message `honest` (encoded as `honestWire`) became. */
export function asSent<M extends UrbMessage>(sent: Buffer, honest: M, honestWire: Buffer): M {
  const h = Buffer.from(honestWire.subarray(0, URB_HEADER_SIZE));
  sent.copy(h, 0, 0, Math.min(URB_HEADER_SIZE, sent.length));
  const body = sent.subarray(URB_HEADER_SIZE);
  const base = { seqnum: u32(h, 4), devid: u32(h, 8), direction: u32(h, 12), ep: u32(h, 16) };
  const dataAndIso = (payload: readonly Buffer[], iso: unknown[] | undefined) => {
    const n = payloadLength(payload);
    const data = body.subarray(0, n);
    const whole = iso === undefined ? 0 : Math.min(iso.length, Math.floor(Math.max(0, body.length - n) / ISO_DESCRIPTOR_SIZE));
    return { payload: data.length > 0 ? [data] : [], ...(iso === undefined ? {} : { isoPackets: decodeIsoPackets(body.subarray(n, n + whole * ISO_DESCRIPTOR_SIZE), whole) }) };
  };
  // each case builds the message of the honest one's kind: the casts only carry M through
  switch (honest.kind) {
    case "CMD_SUBMIT":
      // 0x14 transfer_flags 0x18 transfer_buffer_length 0x1c start_frame 0x20 number_of_packets 0x24 interval 0x28 setup
      return { ...honest, ...base, direction: base.direction as Direction, transferFlags: u32(h, 20), transferBufferLength: u32(h, 24), startFrame: s32(h, 28), numberOfPackets: u32(h, 32), interval: s32(h, 36), setup: h.subarray(40, 48), ...dataAndIso(honest.payload, honest.isoPackets) } as M;
    case "RET_SUBMIT":
      // 0x14 status 0x18 actual_length 0x1c start_frame 0x20 number_of_packets 0x24 error_count
      return { ...honest, ...base, status: s32(h, 20), actualLength: u32(h, 24), startFrame: s32(h, 28), numberOfPackets: u32(h, 32), errorCount: s32(h, 36), ...dataAndIso(honest.payload, honest.isoPackets) } as M;
    case "CMD_UNLINK":
      return { ...honest, ...base, direction: base.direction as Direction, unlinkSeqnum: u32(h, 20) } as M;
    case "RET_UNLINK":
      return { ...honest, ...base, status: s32(h, 20) } as M;
  }
}
