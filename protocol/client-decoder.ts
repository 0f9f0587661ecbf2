/**
 * Incremental decoder of the client → server stream: OP requests (TCP) and then CMD_SUBMIT /
 * CMD_UNLINK. Every CMD is entered into the shared UrbTable so that the server-stream decoder
 * can frame the RET_* answering it.
 *
 * Framing of CMD_SUBMIT (stub_rx.c): 48-byte header, then transfer_buffer_length bytes only
 * if direction is OUT, then number_of_packets × 16 bytes of descriptors only if the endpoint
 * is ISO. Whether an endpoint is ISO comes from `endpointType` when the caller knows the
 * device's descriptors; otherwise number_of_packets in 1..maxIsoPackets means ISO (vhci sends
 * 0 for every other URB). ep 0 is the control endpoint and never ISO.
 */
import { Direction, ISO_DESCRIPTOR_SIZE, OP_HEADER_SIZE, OpCode, URB_HEADER_SIZE, USBIP_VERSION, BUSID_SIZE, UrbCommand } from "./constants.js";
import { decodeCString } from "./device-record.js";
import { ErrorCode, ProtocolError } from "./errors.js";
import { checkSubmittedIso, decodeIsoPackets } from "./iso.js";
import type { ClientMessage, CmdSubmit, CmdUnlink, IsoPacket } from "./messages.js";
import { type Phase, StreamDecoder, type StreamDecoderOptions } from "./stream-decoder.js";
import { s32, u32 } from "./urb-header.js";

export type EndpointType = "control" | "bulk" | "interrupt" | "iso";

export interface ClientDecoderOptions extends StreamDecoderOptions {
  /** "op" for a usbipd TCP session, "urb" (default) for a qrexec link after the handshake. */
  phase?: Extract<Phase, "op" | "urb">;
  /** The endpoint's transfer type, when known (from the device's descriptors). */
  endpointType?: (ep: number, direction: Direction) => EndpointType | undefined;
}

export class ClientStreamDecoder extends StreamDecoder<ClientMessage> {
  private readonly endpointType: ClientDecoderOptions["endpointType"];

  constructor(opts: ClientDecoderOptions = {}) {
    super(opts.phase ?? "urb", opts);
    this.endpointType = opts.endpointType;
  }

  protected step(): ClientMessage | null {
    switch (this._phase) {
      case "urb":
        return this.stepUrb();
      case "op":
        return this.stepOp();
      case "closed":
        return this.trailing();
      case "handshake":
        throw new Error("the client stream has no handshake phase");
    }
  }

  private stepOp(): ClientMessage | null {
    const q = this.q;
    if (q.length < OP_HEADER_SIZE) return null;
    const version = q.u16At(0);
    if (version !== USBIP_VERSION) {
      throw new ProtocolError(ErrorCode.BAD_VERSION, q.offset, `OP version must be 0x0111 (got 0x${version.toString(16).padStart(4, "0")})`);
    }
    const code = q.u16At(2);
    const status = q.u32At(4);
    if (code !== OpCode.REQ_DEVLIST && code !== OpCode.REQ_IMPORT) {
      const rule = code === OpCode.REP_DEVLIST || code === OpCode.REP_IMPORT ? "an OP reply in the client stream" : `unknown OP code 0x${code.toString(16).padStart(4, "0")} (usbipd implements only DEVLIST 0x8005 and IMPORT 0x8003)`;
      throw new ProtocolError(code === OpCode.REP_DEVLIST || code === OpCode.REP_IMPORT ? ErrorCode.WRONG_STREAM : ErrorCode.UNKNOWN_OP, q.offset + 2, rule);
    }
    if (status !== 0) throw new ProtocolError(ErrorCode.BAD_OP_STATUS, q.offset + 4, `OP request status must be 0 (got ${status})`);
    if (code === OpCode.REQ_DEVLIST) {
      q.skip(OP_HEADER_SIZE);
      this._phase = "closed";
      return { kind: "OP_REQ_DEVLIST" };
    }
    if (q.length < OP_HEADER_SIZE + BUSID_SIZE) return null;
    const at = q.offset;
    q.skip(OP_HEADER_SIZE);
    const busid = decodeCString(q.take(BUSID_SIZE), at + OP_HEADER_SIZE, "OP_REQ_IMPORT.busid");
    // After an import request the client sends nothing until OP_REP_IMPORT status 0; then URBs.
    this._phase = "urb";
    return { kind: "OP_REQ_IMPORT", busid };
  }

  private stepUrb(): ClientMessage | null {
    const q = this.q;
    if (q.length < URB_HEADER_SIZE) return null;
    const at = q.offset;
    const c = q.headChunk()!;
    const p0 = q.headPos();
    const h = p0 + URB_HEADER_SIZE <= c.length ? c : q.peek(URB_HEADER_SIZE);
    const p = h === c ? p0 : 0;
    const command = u32(h, p);
    if (command === UrbCommand.CMD_SUBMIT) return this.submit(h, p, at);
    if (command === UrbCommand.CMD_UNLINK) return this.unlink(h, p, at);
    if (command === UrbCommand.RET_SUBMIT || command === UrbCommand.RET_UNLINK) {
      throw new ProtocolError(ErrorCode.WRONG_STREAM, at, `RET_* command ${command} in the client stream`);
    }
    throw new ProtocolError(ErrorCode.UNKNOWN_COMMAND, at, `unknown URB command 0x${command.toString(16).padStart(8, "0")} (CMD_SUBMIT 1 or CMD_UNLINK 2 expected)`);
  }

  /** The header of a CMD_SUBMIT, checked (everything but the ISO descriptors needs only the header). */
  private submitHeader(h: Buffer, p: number, at: number): { msg: CmdSubmit; iso: boolean; dataLen: number; isoLen: number } {
    const seqnum = u32(h, p + 4);
    const direction = u32(h, p + 12);
    const ep = u32(h, p + 16);
    const transferBufferLength = s32(h, p + 24);
    const npWire = s32(h, p + 32);
    if (direction !== Direction.OUT && direction !== Direction.IN) {
      throw new ProtocolError(ErrorCode.BAD_DIRECTION, at + 12, `direction must be 0 (OUT) or 1 (IN), got ${direction}`, seqnum);
    }
    if (ep > 15) throw new ProtocolError(ErrorCode.BAD_ENDPOINT, at + 16, `ep must be 0..15, got ${ep} (CVE-2017-16912)`, seqnum);
    if (transferBufferLength < 0) {
      throw new ProtocolError(ErrorCode.NEGATIVE_LENGTH, at + 24, `transfer_buffer_length must not be negative (${transferBufferLength}; CVE-2017-16913)`, seqnum);
    }
    if (transferBufferLength > this.limits.maxTransferBufferLength) {
      throw new ProtocolError(ErrorCode.LENGTH_LIMIT, at + 24, `transfer_buffer_length ${transferBufferLength} exceeds the limit ${this.limits.maxTransferBufferLength}`, seqnum);
    }
    const iso = this.isIso(ep, direction, npWire, at, seqnum);
    const np = iso ? npWire : 0;
    const msg: CmdSubmit = {
      kind: "CMD_SUBMIT",
      seqnum,
      devid: u32(h, p + 8),
      direction,
      ep,
      transferFlags: u32(h, p + 20),
      transferBufferLength,
      startFrame: s32(h, p + 28),
      numberOfPackets: np,
      interval: s32(h, p + 36),
      setup: h.subarray(p + 40, p + 48), // a view: into the pushed chunk, or into a fresh copy of a split header
      payload: [],
    };
    return { msg, iso, dataLen: direction === Direction.OUT ? transferBufferLength : 0, isoLen: np * ISO_DESCRIPTOR_SIZE };
  }

  private submit(h: Buffer, p: number, at: number): CmdSubmit | null {
    const q = this.q;
    const { msg, iso, dataLen, isoLen } = this.submitHeader(h, p, at);
    if (q.length < URB_HEADER_SIZE + dataLen + isoLen) return null;
    const { seqnum, direction, ep, transferBufferLength } = msg;
    const np = msg.numberOfPackets;
    let isoPackets: IsoPacket[] | undefined;
    if (iso) {
      const descAt = at + URB_HEADER_SIZE + dataLen;
      isoPackets = decodeIsoPackets(q.peekAt(URB_HEADER_SIZE + dataLen, isoLen), np);
      checkSubmittedIso(isoPackets, transferBufferLength, descAt, seqnum);
      msg.isoPackets = isoPackets;
    }
    const added = this.table.addSubmit({
      seqnum,
      devid: msg.devid,
      direction,
      ep,
      transferFlags: msg.transferFlags,
      transferBufferLength,
      iso,
      numberOfPackets: np,
      isoPackets,
      // a copy: the message's view would keep the whole read buffer alive while the URB is outstanding
      setup: ep === 0 ? Buffer.from(msg.setup) : undefined,
    });
    if (added !== "ok") this.tableError(added, at, seqnum);
    // canonical unless number_of_packets was written other than as the descriptor count (the
    // setup bytes and every other field are kept as received); a view when the header was whole
    // in one chunk, else peek's copy
    if (s32(h, p + 32) === np) {
      this._canonicalHeader = h;
      this._canonicalAt = p;
    }
    q.skip(URB_HEADER_SIZE);
    if (dataLen > 0) msg.payload = q.takeSegments(dataLen);
    if (isoLen > 0) q.skip(isoLen);
    return msg;
  }

  /**
   * A non-ISO OUT CMD_SUBMIT whose header has arrived, and passed the checks next() makes
   * (including whether the URB table will take it), but whose payload has not all arrived: the
   * message (no payload) and views of the payload bytes buffered so far from payload offset
   * `from` on (found from the end of the queue: linear when asked after every chunk). Nothing is
   * consumed; next() returns the whole message later. undefined when the buffered bytes do not
   * start such a message. Throws ProtocolError on a header next() would refuse. For the relay's
   * cut-through. `minPayload`: undefined at once, nothing built, when transfer_buffer_length
   * is at most this (a relay that passes only large payloads early asks after every chunk; the
   * header was checked by next() already).
   */
  partialCmdSubmit(from = 0, minPayload = -1): { msg: CmdSubmit; payloadSoFar: Buffer[] } | undefined {
    const q = this.q;
    if (this._phase !== "urb" || this.error !== null || q.length < URB_HEADER_SIZE) return undefined;
    if ((q.u32At(24) | 0) <= minPayload) return undefined;
    const h = q.peek(URB_HEADER_SIZE);
    if (u32(h, 0) !== UrbCommand.CMD_SUBMIT) return undefined;
    const { msg, iso, dataLen } = this.submitHeader(h, 0, q.offset);
    if (iso || dataLen === 0 || q.length >= URB_HEADER_SIZE + dataLen) return undefined;
    const fits = this.table.canAddSubmit(msg.seqnum, msg.transferBufferLength);
    if (fits !== "ok") this.tableError(fits, q.offset, msg.seqnum);
    const have = q.length - URB_HEADER_SIZE;
    return { msg, payloadSoFar: from < have ? q.peekSegments(URB_HEADER_SIZE + from, have - from) : [] };
  }

  private isIso(ep: number, direction: Direction, np: number, at: number, seqnum: number): boolean {
    const type = ep === 0 ? "control" : this.endpointType?.(ep, direction);
    const nonIsoOk = np === 0 || np === -1; // vhci sends 0; other clients 0xffffffff
    if (type === undefined) {
      if (nonIsoOk) return false;
      if (np > 0 && np <= this.limits.maxIsoPackets) return true;
      throw new ProtocolError(ErrorCode.PACKET_COUNT, at + 32, `number_of_packets must be 0..${this.limits.maxIsoPackets} (got ${np})`, seqnum);
    }
    if (type !== "iso") {
      if (nonIsoOk) return false;
      throw new ProtocolError(ErrorCode.PACKET_COUNT, at + 32, `number_of_packets must be 0 (or 0xffffffff) for a non-ISO endpoint (got ${np})`, seqnum);
    }
    if (np < 0 || np > this.limits.maxIsoPackets) {
      throw new ProtocolError(ErrorCode.PACKET_COUNT, at + 32, `number_of_packets must be 0..${this.limits.maxIsoPackets} for an ISO endpoint (got ${np})`, seqnum);
    }
    return true;
  }

  private unlink(h: Buffer, p: number, at: number): CmdUnlink {
    const seqnum = u32(h, p + 4);
    const direction = u32(h, p + 12);
    const ep = u32(h, p + 16);
    // vhci sends direction 0 and ep 0 in CMD_UNLINK; they carry no meaning but must be sane.
    if (direction > 1) throw new ProtocolError(ErrorCode.BAD_DIRECTION, at + 12, `direction must be 0 or 1, got ${direction}`, seqnum);
    if (ep > 15) throw new ProtocolError(ErrorCode.BAD_ENDPOINT, at + 16, `ep must be 0..15, got ${ep}`, seqnum);
    const msg: CmdUnlink = {
      kind: "CMD_UNLINK",
      seqnum,
      devid: u32(h, p + 8),
      direction: direction as Direction,
      ep,
      unlinkSeqnum: u32(h, p + 20),
    };
    const added = this.table.addUnlink({ seqnum, devid: msg.devid, unlinkSeqnum: msg.unlinkSeqnum });
    if (added !== "ok") this.tableError(added, at, seqnum);
    this.q.skip(URB_HEADER_SIZE);
    return msg;
  }

  private tableError(r: "duplicate" | "full" | "bytes", at: number, seqnum: number): never {
    if (r === "duplicate") {
      throw new ProtocolError(ErrorCode.DUPLICATE_SEQNUM, at + 4, `seqnum ${seqnum} is already in flight`, seqnum);
    }
    if (r === "bytes") {
      throw new ProtocolError(ErrorCode.TOO_MANY_OUTSTANDING, at + 24, `transfer_buffer_length would bring the URBs in flight to more than ${this.table.maxOutstandingBytes} bytes (${this.table.outstandingBytes} already)`, seqnum);
    }
    throw new ProtocolError(ErrorCode.TOO_MANY_OUTSTANDING, at, `more than ${this.table.maxOutstanding} URBs in flight`, seqnum);
  }
}
