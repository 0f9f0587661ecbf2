/**
 * Encoders. They never concatenate bulk data: a URB message becomes
 * [48-byte header, ...payload segments, iso descriptors?] for writev / cork-uncork.
 * OP-phase messages (small, variable layout) are built with smart-buffer.
 * number_of_packets is written as the descriptor count: 0 for every non-ISO URB.
 */
import { SmartBuffer } from "smart-buffer";
import { BUSID_SIZE, OpCode, USBIP_VERSION, UrbCommand } from "./constants.js";
import { writeCString, writeDeviceRecord, writeInterfaceRecord } from "./device-record.js";
import { formatHandshake } from "./handshake.js";
import { encodeIsoPackets } from "./iso.js";
import { assertNever, type CmdSubmit, type Message, payloadLength, type RetSubmit } from "./messages.js";
import { writeUrbHeader } from "./urb-header.js";

/** Encode any message as a list of buffers to be written in order. */
export function encode(msg: Message): Buffer[] {
  switch (msg.kind) {
    case "CMD_SUBMIT":
      return encodeCmdSubmit(msg);
    case "RET_SUBMIT":
      return encodeRetSubmit(msg);
    case "CMD_UNLINK":
      return [writeUrbHeader(UrbCommand.CMD_UNLINK, msg.seqnum, msg.devid, msg.direction, msg.ep, msg.unlinkSeqnum, 0, 0, 0, 0, undefined)];
    case "RET_UNLINK":
      return [writeUrbHeader(UrbCommand.RET_UNLINK, msg.seqnum, msg.devid, msg.direction, msg.ep, msg.status, 0, 0, 0, 0, undefined)];
    case "HANDSHAKE":
      return [formatHandshake(msg)];
    case "OP_REQ_DEVLIST":
      return [opHeader(OpCode.REQ_DEVLIST, 0).toBuffer()];
    case "OP_REQ_IMPORT": {
      const sb = opHeader(OpCode.REQ_IMPORT, 0);
      writeCString(sb, msg.busid, BUSID_SIZE);
      return [sb.toBuffer()];
    }
    case "OP_REP_IMPORT": {
      const sb = opHeader(OpCode.REP_IMPORT, msg.status);
      if (msg.status === 0) {
        if (msg.device === undefined) throw new RangeError("OP_REP_IMPORT with status 0 needs a device record");
        writeDeviceRecord(sb, msg.device);
      } else if (msg.device !== undefined) {
        throw new RangeError("OP_REP_IMPORT carries a device record only when status is 0");
      }
      return [sb.toBuffer()];
    }
    case "OP_REP_DEVLIST": {
      const sb = opHeader(OpCode.REP_DEVLIST, msg.status);
      sb.writeUInt32BE(msg.devices.length);
      for (const d of msg.devices) {
        if (d.interfaces.length !== d.bNumInterfaces) {
          throw new RangeError(`device ${d.busid}: bNumInterfaces ${d.bNumInterfaces} but ${d.interfaces.length} interface records`);
        }
        writeDeviceRecord(sb, d);
        for (const i of d.interfaces) writeInterfaceRecord(sb, i);
      }
      return [sb.toBuffer()];
    }
    default:
      return assertNever(msg);
  }
}

/** Encode into one Buffer (copies the payload: for tests and small messages). */
export function encodeToBuffer(msg: Message): Buffer {
  return Buffer.concat(encode(msg));
}

function opHeader(code: number, status: number): SmartBuffer {
  const sb = new SmartBuffer();
  sb.writeUInt16BE(USBIP_VERSION);
  sb.writeUInt16BE(code);
  sb.writeUInt32BE(status >>> 0);
  return sb;
}

/**
 * The 48-byte header of a CMD_SUBMIT or RET_SUBMIT alone, its payload not looked at (the relay's
 * cut-through sends the payload as it arrives). number_of_packets is the descriptor count.
 */
export function encodeSubmitHeader(m: CmdSubmit | RetSubmit): Buffer {
  const np = m.isoPackets?.length ?? 0;
  if (m.kind === "RET_SUBMIT") return writeUrbHeader(UrbCommand.RET_SUBMIT, m.seqnum, m.devid, m.direction, m.ep, m.status, m.actualLength, m.startFrame, np, m.errorCount, undefined);
  if (m.setup.length !== 8) throw new RangeError("setup must be 8 bytes");
  return writeUrbHeader(UrbCommand.CMD_SUBMIT, m.seqnum, m.devid, m.direction, m.ep, m.transferFlags, m.transferBufferLength, m.startFrame, np, m.interval, m.setup);
}

function encodeCmdSubmit(m: CmdSubmit): Buffer[] {
  const np = m.isoPackets?.length ?? 0;
  const n = payloadLength(m.payload);
  if (m.direction === 0 ? n !== m.transferBufferLength : n !== 0) {
    throw new RangeError(`CMD_SUBMIT seqnum ${m.seqnum}: payload of ${n} bytes; OUT needs transfer_buffer_length (${m.transferBufferLength}), IN none`);
  }
  const out = [encodeSubmitHeader(m)];
  for (const s of m.payload) if (s.length > 0) out.push(s);
  if (np > 0) out.push(encodeIsoPackets(m.isoPackets!));
  return out;
}

function encodeRetSubmit(m: RetSubmit): Buffer[] {
  const np = m.isoPackets?.length ?? 0;
  const n = payloadLength(m.payload);
  if (n !== 0 && n !== m.actualLength) {
    throw new RangeError(`RET_SUBMIT seqnum ${m.seqnum}: payload of ${n} bytes but actual_length ${m.actualLength}`);
  }
  const out = [encodeSubmitHeader(m)];
  for (const s of m.payload) if (s.length > 0) out.push(s);
  if (np > 0) out.push(encodeIsoPackets(m.isoPackets!));
  return out;
}
