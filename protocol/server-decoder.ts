/**
 * Incremental decoder of the server → client stream: the qrexec handshake line or OP replies,
 * then RET_SUBMIT / RET_UNLINK. RET_* carry devid/direction/ep as 0, so each RET is framed with
 * what the shared UrbTable remembers of the CMD it answers (filled by ClientStreamDecoder):
 * payload = actual_length bytes only for IN, descriptors = number_of_packets × 16 only for ISO.
 *
 * Checks made here because framing depends on them (vhci_rx.c makes some, not all):
 * unknown/answered seqnum (fatal in vhci), actual_length <= transfer_buffer_length
 * (CVE-2016-3955), number_of_packets equal to the submitted count for ISO and 0 otherwise
 * (vhci trusts it: CVE-2026-31607), ISO actual_length sums, RET_UNLINK only for a pending unlink.
 */
import { ISO_DESCRIPTOR_SIZE, OP_HEADER_SIZE, OpCode, DEVICE_NUM_INTERFACES_OFFSET, URB_HEADER_SIZE, USB_DEVICE_RECORD_SIZE, USB_INTERFACE_RECORD_SIZE, USBIP_VERSION, UrbCommand, Direction } from "./constants.js";
import { decodeDeviceRecord, decodeInterfaceRecord } from "./device-record.js";
import { ErrorCode, ProtocolError } from "./errors.js";
import { scanHandshake } from "./handshake.js";
import { checkReturnedIso, decodeIsoPackets } from "./iso.js";
import type { ListedDevice, RetSubmit, RetUnlink, ServerMessage } from "./messages.js";
import { type Phase, StreamDecoder, type StreamDecoderOptions } from "./stream-decoder.js";
import { s32, u32 } from "./urb-header.js";
import type { PendingUnlink, SubmittedUrb } from "./urb-table.js";

export interface ServerDecoderOptions extends StreamDecoderOptions {
  /** "op" for a usbipd TCP session, "handshake" for a qrexec link, "urb" (default) after either. */
  phase?: Extract<Phase, "op" | "handshake" | "urb">;
}

export class ServerStreamDecoder extends StreamDecoder<ServerMessage> {
  /** The CMD_SUBMIT answered by the RET_SUBMIT last returned (or the victim of a RET_UNLINK). */
  lastSubmit: SubmittedUrb | undefined;
  /** The CMD_UNLINK answered by the RET_UNLINK last returned. */
  lastUnlink: PendingUnlink | undefined;
  /** true after a RET_SUBMIT of an OUT URB: a following non-header is reported as OUT payload. */
  private afterOutRet = false;

  constructor(opts: ServerDecoderOptions = {}) {
    super(opts.phase ?? "urb", opts);
  }

  protected override onReset(): void {
    this.lastSubmit = undefined;
    this.lastUnlink = undefined;
    this.afterOutRet = false;
  }

  protected step(): ServerMessage | null {
    switch (this._phase) {
      case "urb":
        return this.stepUrb();
      case "op":
        return this.stepOp();
      case "handshake":
        return this.stepHandshake();
      case "closed":
        return this.trailing();
    }
  }

  private stepHandshake(): ServerMessage | null {
    const q = this.q;
    const r = scanHandshake(q.peek(Math.min(q.length, 256)), q.offset);
    if (r.type === "need-more") return null;
    if (r.type === "error") throw r.error;
    q.skip(r.length);
    this._phase = "urb";
    return r.handshake;
  }

  private stepOp(): ServerMessage | null {
    const q = this.q;
    if (q.length < OP_HEADER_SIZE) return null;
    const at = q.offset;
    const version = q.u16At(0);
    if (version !== USBIP_VERSION) {
      throw new ProtocolError(ErrorCode.BAD_VERSION, at, `OP version must be 0x0111 (got 0x${version.toString(16).padStart(4, "0")})`);
    }
    const code = q.u16At(2);
    const status = q.u32At(4);
    if (code === OpCode.REP_IMPORT) {
      if (status !== 0) {
        q.skip(OP_HEADER_SIZE);
        this._phase = "closed";
        return { kind: "OP_REP_IMPORT", status };
      }
      if (q.length < OP_HEADER_SIZE + USB_DEVICE_RECORD_SIZE) return null;
      const device = decodeDeviceRecord(q.peekAt(OP_HEADER_SIZE, USB_DEVICE_RECORD_SIZE), at + OP_HEADER_SIZE);
      q.skip(OP_HEADER_SIZE + USB_DEVICE_RECORD_SIZE);
      this._phase = "urb";
      return { kind: "OP_REP_IMPORT", status, device };
    }
    if (code === OpCode.REP_DEVLIST) return this.devlist(status, at);
    if (code === OpCode.REQ_DEVLIST || code === OpCode.REQ_IMPORT) {
      throw new ProtocolError(ErrorCode.WRONG_STREAM, at + 2, "an OP request in the server stream");
    }
    throw new ProtocolError(ErrorCode.UNKNOWN_OP, at + 2, `unknown OP reply code 0x${code.toString(16).padStart(4, "0")}`);
  }

  /** OP_REP_DEVLIST: op_common, u32 ndev, then per device 312 bytes + bNumInterfaces × 4. */
  private devlist(status: number, at: number): ServerMessage | null {
    const q = this.q;
    if (q.length < OP_HEADER_SIZE + 4) return null;
    const ndev = q.u32At(OP_HEADER_SIZE);
    if (ndev > this.limits.maxDevices) {
      throw new ProtocolError(ErrorCode.TOO_MANY_DEVICES, at + OP_HEADER_SIZE, `OP_REP_DEVLIST announces ${ndev} devices (limit ${this.limits.maxDevices})`);
    }
    // Walk the records to find the total length before decoding anything.
    let need = OP_HEADER_SIZE + 4;
    for (let i = 0; i < ndev; i++) {
      if (q.length < need + USB_DEVICE_RECORD_SIZE) return null;
      need += USB_DEVICE_RECORD_SIZE + USB_INTERFACE_RECORD_SIZE * q.byteAt(need + DEVICE_NUM_INTERFACES_OFFSET);
    }
    if (q.length < need) return null;
    const devices: ListedDevice[] = [];
    let p = OP_HEADER_SIZE + 4;
    for (let i = 0; i < ndev; i++) {
      const rec = decodeDeviceRecord(q.peekAt(p, USB_DEVICE_RECORD_SIZE), at + p);
      p += USB_DEVICE_RECORD_SIZE;
      const interfaces = [];
      for (let k = 0; k < rec.bNumInterfaces; k++, p += USB_INTERFACE_RECORD_SIZE) {
        interfaces.push(decodeInterfaceRecord(q.peekAt(p, USB_INTERFACE_RECORD_SIZE)));
      }
      devices.push({ ...rec, interfaces });
    }
    q.skip(need);
    this._phase = "closed";
    return { kind: "OP_REP_DEVLIST", status, devices };
  }

  private stepUrb(): ServerMessage | null {
    const q = this.q;
    if (q.length < URB_HEADER_SIZE) return null;
    const at = q.offset;
    const c = q.headChunk()!;
    const p0 = q.headPos();
    const h = p0 + URB_HEADER_SIZE <= c.length ? c : q.peek(URB_HEADER_SIZE);
    const p = h === c ? p0 : 0;
    const command = u32(h, p);
    if (command === UrbCommand.RET_SUBMIT) return this.retSubmit(h, p, at);
    if (command === UrbCommand.RET_UNLINK) return this.retUnlink(h, p, at);
    if (this.afterOutRet) {
      throw new ProtocolError(ErrorCode.OUT_PAYLOAD_IN_RET, at, "bytes after a RET_SUBMIT for an OUT transfer: RET_SUBMIT carries no payload for OUT (vhci: \"unknown pdu\")");
    }
    if (command === UrbCommand.CMD_SUBMIT || command === UrbCommand.CMD_UNLINK) {
      throw new ProtocolError(ErrorCode.WRONG_STREAM, at, `CMD_* command ${command} in the server stream`);
    }
    throw new ProtocolError(ErrorCode.UNKNOWN_COMMAND, at, `unknown URB command 0x${command.toString(16).padStart(8, "0")} (RET_SUBMIT 3 or RET_UNLINK 4 expected)`);
  }

  /** The header of a RET_SUBMIT, checked (the checks need only the header and the table). */
  private retSubmitHeader(h: Buffer, p: number, at: number): { msg: RetSubmit; urb: SubmittedUrb; dataLen: number; isoLen: number } {
    const seqnum = u32(h, p + 4);
    const urb = this.table.getSubmit(seqnum);
    if (urb === undefined) {
      const why = this.table.getUnlink(seqnum) !== undefined ? "is a CMD_UNLINK's seqnum" : "is not an unanswered CMD_SUBMIT";
      throw new ProtocolError(ErrorCode.UNKNOWN_SEQNUM, at + 4, `RET_SUBMIT seqnum ${seqnum} ${why} (vhci: "cannot find a urb")`, seqnum);
    }
    const actualLength = s32(h, p + 24);
    if (actualLength < 0) throw new ProtocolError(ErrorCode.NEGATIVE_LENGTH, at + 24, `actual_length must not be negative (${actualLength})`, seqnum);
    if (actualLength > urb.transferBufferLength) {
      throw new ProtocolError(ErrorCode.ACTUAL_LENGTH, at + 24, `actual_length ${actualLength} exceeds the submitted transfer_buffer_length ${urb.transferBufferLength} (CVE-2016-3955)`, seqnum);
    }
    const npWire = s32(h, p + 32);
    let np = 0;
    if (urb.iso) {
      if (npWire !== urb.numberOfPackets) {
        throw new ProtocolError(ErrorCode.PACKET_COUNT, at + 32, `number_of_packets ${npWire} differs from the ${urb.numberOfPackets} submitted (CVE-2026-31607)`, seqnum);
      }
      np = npWire;
    } else if (npWire !== 0 && npWire !== -1) {
      throw new ProtocolError(ErrorCode.PACKET_COUNT, at + 32, `number_of_packets must be 0 for a non-ISO URB (got ${npWire}; CVE-2026-31607)`, seqnum);
    }
    const msg: RetSubmit = {
      kind: "RET_SUBMIT",
      seqnum,
      devid: u32(h, p + 8),
      direction: u32(h, p + 12),
      ep: u32(h, p + 16),
      status: s32(h, p + 20),
      actualLength,
      startFrame: s32(h, p + 28),
      numberOfPackets: np,
      errorCount: s32(h, p + 36),
      payload: [],
    };
    return { msg, urb, dataLen: urb.direction === Direction.IN ? actualLength : 0, isoLen: np * ISO_DESCRIPTOR_SIZE };
  }

  private retSubmit(h: Buffer, p: number, at: number): RetSubmit | null {
    const q = this.q;
    const { msg, urb, dataLen, isoLen } = this.retSubmitHeader(h, p, at);
    if (q.length < URB_HEADER_SIZE + dataLen + isoLen) return null;
    if (urb.iso) {
      msg.isoPackets = decodeIsoPackets(q.peekAt(URB_HEADER_SIZE + dataLen, isoLen), msg.numberOfPackets);
      checkReturnedIso(msg.isoPackets, msg.actualLength, at + URB_HEADER_SIZE + dataLen, msg.seqnum);
    }
    this.table.answerSubmit(msg.seqnum);
    this.lastSubmit = urb;
    this.lastUnlink = undefined;
    this.afterOutRet = urb.direction === Direction.OUT;
    // canonical: number_of_packets as the descriptor count, the 8 padding bytes zero
    if (s32(h, p + 32) === msg.numberOfPackets && u32(h, p + 40) === 0 && u32(h, p + 44) === 0) {
      this._canonicalHeader = h;
      this._canonicalAt = p;
    }
    q.skip(URB_HEADER_SIZE);
    if (dataLen > 0) msg.payload = q.takeSegments(dataLen);
    if (isoLen > 0) q.skip(isoLen);
    return msg;
  }

  /**
   * A RET_SUBMIT whose header has arrived, and passed the same checks next() makes, but whose
   * payload has not all arrived yet: the message (no payload), the URB it answers, and views of
   * the payload bytes buffered so far from payload offset `from` on (what the caller has not
   * passed on yet; found from the end of the queue, so asking after every chunk stays linear).
   * Nothing is consumed; next() returns the whole message later. undefined when the buffered
   * bytes do not start such a message. Throws ProtocolError (and the stream is then broken) on a
   * header that next() would refuse. For the relay's cut-through of large payloads.
   * `minPayload`: undefined at once, nothing built, when actual_length is at most this (asked
   * after every chunk; the header was checked by next() already).
   */
  partialRetSubmit(from = 0, minPayload = -1): { msg: RetSubmit; urb: SubmittedUrb; payloadSoFar: Buffer[] } | undefined {
    const q = this.q;
    if (this._phase !== "urb" || this.error !== null || q.length < URB_HEADER_SIZE) return undefined;
    if ((q.u32At(24) | 0) <= minPayload) return undefined;
    const h = q.peek(URB_HEADER_SIZE);
    if (u32(h, 0) !== UrbCommand.RET_SUBMIT) return undefined;
    const { msg, urb, dataLen, isoLen } = this.retSubmitHeader(h, 0, q.offset);
    if (q.length >= URB_HEADER_SIZE + dataLen + isoLen) return undefined; // whole: next() has it
    const have = Math.min(q.length - URB_HEADER_SIZE, dataLen);
    return { msg, urb, payloadSoFar: from < have ? q.peekSegments(URB_HEADER_SIZE + from, have - from) : [] };
  }

  private retUnlink(h: Buffer, p: number, at: number): RetUnlink {
    const seqnum = u32(h, p + 4);
    const answered = this.table.answerUnlink(seqnum);
    if (answered === undefined) {
      throw new ProtocolError(ErrorCode.UNKNOWN_UNLINK, at + 4, `RET_UNLINK seqnum ${seqnum} answers no pending CMD_UNLINK`, seqnum);
    }
    this.lastUnlink = answered.unlink;
    this.lastSubmit = answered.victim;
    this.afterOutRet = false;
    this.q.skip(URB_HEADER_SIZE);
    return {
      kind: "RET_UNLINK",
      seqnum,
      devid: u32(h, p + 8),
      direction: u32(h, p + 12),
      ep: u32(h, p + 16),
      status: s32(h, p + 20),
    };
  }
}
