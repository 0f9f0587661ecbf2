/**
 * The flat record `decode` prints for each message (ARCHITECTURE.md, CLI contract): fields a
 * kind does not have are omitted. RET_* carry devid/direction/ep as 0 on the wire; like
 * Wireshark, the record shows the values of the CMD it answers (`matched`).
 */
import { Direction } from "./constants.js";
import { assertNever, type DeviceRecord, type Message, payloadLength } from "./messages.js";

export interface MessageRecord {
  from: "client" | "server";
  kind: Message["kind"];
  seqnum?: number;
  devid?: number;
  direction?: "in" | "out";
  ep?: number;
  status?: number;
  transferFlags?: number;
  transferBufferLength?: number;
  actualLength?: number;
  numberOfPackets?: number;
  unlinkSeqnum?: number;
  payloadBytes?: number;
  offset: number;
  /** HANDSHAKE only: the speed string. */
  speed?: string;
  /** OP_REQ_IMPORT / OP_REP_IMPORT: the busid. */
  busid?: string;
  /** OP_REP_DEVLIST: the devices listed. */
  devices?: ListedDeviceRecord[];
}

/** One device of an OP_REP_DEVLIST, as decode prints it: the record, devid for busnum/devnum, interface triples. */
export type ListedDeviceRecord = Omit<DeviceRecord, "busnum" | "devnum" | "bNumInterfaces"> & {
  devid: number;
  /** [bInterfaceClass, bInterfaceSubClass, bInterfaceProtocol] of each interface */
  interfaces: [number, number, number][];
};

/** What the CMD answered by a RET looked like (devid, direction, ep). */
export interface MatchedCommand {
  devid: number;
  direction: number;
  ep: number;
}

const dir = (d: number): "in" | "out" => (d === Direction.IN ? "in" : "out");

export function summarize(msg: Message, from: "client" | "server", offset: number, matched?: MatchedCommand): MessageRecord {
  switch (msg.kind) {
    case "OP_REQ_DEVLIST":
      return { from, kind: msg.kind, offset };
    case "OP_REP_DEVLIST":
      return {
        from,
        kind: msg.kind,
        status: msg.status,
        devices: msg.devices.map(({ busnum, devnum, bNumInterfaces: _n, interfaces, ...d }) => ({
          ...d,
          devid: ((busnum << 16) | devnum) >>> 0,
          interfaces: interfaces.map((i) => [i.bInterfaceClass, i.bInterfaceSubClass, i.bInterfaceProtocol] as [number, number, number]),
        })),
        offset,
      };
    case "OP_REQ_IMPORT":
      return { from, kind: msg.kind, busid: msg.busid, offset };
    case "OP_REP_IMPORT":
      return msg.device === undefined
        ? { from, kind: msg.kind, status: msg.status, offset }
        : { from, kind: msg.kind, status: msg.status, busid: msg.device.busid, devid: ((msg.device.busnum << 16) | msg.device.devnum) >>> 0, offset };
    case "HANDSHAKE":
      return { from, kind: msg.kind, devid: msg.devid, speed: msg.speed, offset };
    case "CMD_SUBMIT":
      return {
        from,
        kind: msg.kind,
        seqnum: msg.seqnum,
        devid: msg.devid,
        direction: dir(msg.direction),
        ep: msg.ep,
        transferFlags: msg.transferFlags,
        transferBufferLength: msg.transferBufferLength,
        numberOfPackets: msg.numberOfPackets,
        payloadBytes: payloadLength(msg.payload),
        offset,
      };
    case "RET_SUBMIT":
      return {
        from,
        kind: msg.kind,
        seqnum: msg.seqnum,
        devid: matched?.devid ?? msg.devid,
        direction: dir(matched?.direction ?? msg.direction),
        ep: matched?.ep ?? msg.ep,
        status: msg.status,
        actualLength: msg.actualLength,
        numberOfPackets: msg.numberOfPackets,
        payloadBytes: payloadLength(msg.payload),
        offset,
      };
    case "CMD_UNLINK":
      return { from, kind: msg.kind, seqnum: msg.seqnum, devid: msg.devid, direction: dir(msg.direction), ep: msg.ep, unlinkSeqnum: msg.unlinkSeqnum, offset };
    case "RET_UNLINK":
      return {
        from,
        kind: msg.kind,
        seqnum: msg.seqnum,
        devid: matched?.devid ?? msg.devid,
        direction: dir(matched?.direction ?? msg.direction),
        ep: matched?.ep ?? msg.ep,
        status: msg.status,
        offset,
      };
    default:
      return assertNever(msg);
  }
}
