/** Decoding helpers and fast-check arbitraries for whole, valid USB/IP sessions. */
import fc from "fast-check";
import { ClientStreamDecoder, type ClientDecoderOptions } from "../../protocol/client-decoder.js";
import { ServerStreamDecoder, type ServerDecoderOptions } from "../../protocol/server-decoder.js";
import { UrbTable } from "../../protocol/urb-table.js";
import { encode } from "../../protocol/encoder.js";
import type { ClientMessage, CmdSubmit, CmdUnlink, IsoPacket, Message, RetSubmit, RetUnlink, ServerMessage, ListedDevice, DeviceRecord } from "../../protocol/messages.js";
import type { ProtocolError } from "../../protocol/errors.js";

export interface Decoded {
  client: ClientMessage[];
  server: ServerMessage[];
  clientError: ProtocolError | null;
  serverError: ProtocolError | null;
}

/** Decode client chunks, then server chunks, with one shared table (as `decode` does). */
export function decodePair(
  clientChunks: Buffer[],
  serverChunks: Buffer[],
  opts: { client?: ClientDecoderOptions; server?: ServerDecoderOptions } = {},
): Decoded {
  const table = new UrbTable();
  const cd = new ClientStreamDecoder({ table, ...opts.client });
  const client: ClientMessage[] = [];
  for (const c of clientChunks) client.push(...cd.feed(c));
  const clientError = cd.end();
  const sd = new ServerStreamDecoder({ table, ...opts.server });
  const server: ServerMessage[] = [];
  for (const c of serverChunks) server.push(...sd.feed(c));
  const serverError = sd.end();
  return { client, server, clientError, serverError };
}

export function encodeAll(msgs: Message[]): Buffer {
  return Buffer.concat(msgs.flatMap((m) => encode(m)));
}

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const s32 = fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff });
const errno = fc.constantFrom(0, -2, -19, -32, -71, -104, -108, -110, -121);

export interface UrbSpec {
  cmd: CmdSubmit;
  ret: RetSubmit;
  /** when set, the URB is unlinked: a CMD_UNLINK follows, answered by this RET_UNLINK */
  unlink: { cmd: CmdUnlink; ret: RetUnlink; cancelled: boolean } | undefined;
}

/** One URB: CMD_SUBMIT, the RET_SUBMIT answering it, and optionally an unlink. */
const urbSpec = fc
  .record({
    direction: fc.constantFrom(0, 1) as fc.Arbitrary<0 | 1>,
    ep: fc.integer({ min: 0, max: 15 }),
    iso: fc.boolean(),
    tbl: fc.integer({ min: 0, max: 700 }),
    np: fc.integer({ min: 1, max: 6 }),
    devid: u32,
    flags: u32,
    startFrame: s32,
    interval: s32,
    setup: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    status: errno,
    errorCount: s32,
    fill: fc.integer({ min: 0, max: 255 }),
    actualFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    unlink: fc.option(fc.record({ cancelled: fc.boolean(), status: errno }), { nil: undefined }),
    retDevid: fc.constantFrom(0, 0, 7),
  })
  .map((r) => {
    const iso = r.iso && r.ep !== 0;
    const np = iso ? r.np : 0;
    // ISO packets tile the buffer: packet i gets [off_i, off_i + len_i).
    const isoSubmitted: IsoPacket[] = [];
    if (iso) {
      const per = Math.floor(r.tbl / np);
      for (let i = 0; i < np; i++) isoSubmitted.push({ offset: i * per, length: per, actualLength: 0, status: 0 });
    }
    const payload = r.direction === 0 && r.tbl > 0 ? [Buffer.alloc(r.tbl, r.fill)] : [];
    const cmd: CmdSubmit = {
      kind: "CMD_SUBMIT",
      seqnum: 0,
      devid: r.devid,
      direction: r.direction,
      ep: r.ep,
      transferFlags: r.flags,
      transferBufferLength: r.tbl,
      startFrame: r.startFrame,
      numberOfPackets: np,
      interval: r.interval,
      setup: Buffer.from(r.setup),
      payload,
    };
    if (iso) cmd.isoPackets = isoSubmitted;
    let actual = Math.floor(r.actualFrac * r.tbl);
    let isoReturned: IsoPacket[] | undefined;
    if (iso) {
      isoReturned = isoSubmitted.map((d) => ({ ...d, actualLength: Math.floor(r.actualFrac * d.length), status: 0 }));
      actual = isoReturned.reduce((s, d) => s + d.actualLength, 0);
    }
    const ret: RetSubmit = {
      kind: "RET_SUBMIT",
      seqnum: 0,
      devid: r.retDevid,
      direction: 0,
      ep: 0,
      status: r.status,
      actualLength: actual,
      startFrame: r.startFrame,
      numberOfPackets: np,
      errorCount: r.errorCount,
      payload: r.direction === 1 && actual > 0 ? [Buffer.alloc(actual, r.fill ^ 0x5a)] : [],
    };
    if (isoReturned) ret.isoPackets = isoReturned;
    const unlink = r.unlink && {
      cancelled: r.unlink.cancelled,
      cmd: { kind: "CMD_UNLINK", seqnum: 0, devid: r.devid, direction: 0, ep: 0, unlinkSeqnum: 0 } as CmdUnlink,
      ret: { kind: "RET_UNLINK", seqnum: 0, devid: 0, direction: 0, ep: 0, status: r.unlink.cancelled ? -104 : 0 } as RetUnlink,
    };
    return { cmd, ret, unlink } satisfies UrbSpec;
  });

/**
 * A URB-phase session: the client stream (CMD_SUBMITs, then CMD_UNLINKs) and the server
 * stream (answers in a shuffled order, RET_SUBMIT before RET_UNLINK(0) for uncancelled unlinks).
 * seqnums are unique u32s (not contiguous, as with vhci's shared counter).
 */
export const urbSession = fc
  .tuple(fc.array(urbSpec, { minLength: 1, maxLength: 12 }), fc.uniqueArray(u32, { minLength: 24, maxLength: 24 }), fc.infiniteStream(fc.nat()))
  .map(([specs, seqnums, rnd]) => {
    let k = 0;
    for (const s of specs) {
      s.cmd.seqnum = s.ret.seqnum = seqnums[k++]!;
      if (s.unlink) {
        s.unlink.cmd.seqnum = s.unlink.ret.seqnum = seqnums[k++]!;
        s.unlink.cmd.unlinkSeqnum = s.cmd.seqnum;
      }
    }
    const client: ClientMessage[] = [...specs.map((s) => s.cmd), ...specs.flatMap((s) => (s.unlink ? [s.unlink.cmd] : []))];
    // Each URB's answers as a group, groups in a random order.
    const groups: ServerMessage[][] = specs.map((s) => (s.unlink === undefined ? [s.ret] : s.unlink.cancelled ? [s.unlink.ret] : [s.ret, s.unlink.ret]));
    const it = rnd[Symbol.iterator]();
    for (let i = groups.length - 1; i > 0; i--) {
      const j = (it.next().value as number) % (i + 1);
      [groups[i], groups[j]] = [groups[j]!, groups[i]!];
    }
    return { client, server: groups.flat() };
  });

const cstr = (max: number) => fc.string({ minLength: 0, maxLength: max, unit: fc.integer({ min: 1, max: 255 }).map((c) => String.fromCharCode(c)) });
const u8 = fc.integer({ min: 0, max: 255 });
const u16 = fc.integer({ min: 0, max: 0xffff });

export const deviceRecord: fc.Arbitrary<DeviceRecord> = fc.record({
  path: cstr(255),
  busid: cstr(31),
  busnum: u32,
  devnum: u32,
  speed: u32,
  idVendor: u16,
  idProduct: u16,
  bcdDevice: u16,
  bDeviceClass: u8,
  bDeviceSubClass: u8,
  bDeviceProtocol: u8,
  bConfigurationValue: u8,
  bNumConfigurations: u8,
  bNumInterfaces: u8,
});

export const listedDevice: fc.Arbitrary<ListedDevice> = fc
  .tuple(deviceRecord, fc.array(fc.record({ bInterfaceClass: u8, bInterfaceSubClass: u8, bInterfaceProtocol: u8 }), { maxLength: 8 }))
  .map(([d, interfaces]) => ({ ...d, bNumInterfaces: interfaces.length, interfaces }));

/** An OP exchange: DEVLIST, or IMPORT (failed, or followed by a URB session). */
export const opSession = fc.oneof(
  fc.record({ status: u32, devices: fc.array(listedDevice, { maxLength: 3 }) }).map((r) => ({
    client: [{ kind: "OP_REQ_DEVLIST" }] as ClientMessage[],
    server: [{ kind: "OP_REP_DEVLIST", status: r.status, devices: r.devices }] as ServerMessage[],
  })),
  fc.tuple(cstr(31), fc.integer({ min: 1, max: 0xffff_ffff })).map(([busid, status]) => ({
    client: [{ kind: "OP_REQ_IMPORT", busid }] as ClientMessage[],
    server: [{ kind: "OP_REP_IMPORT", status }] as ServerMessage[],
  })),
  fc.tuple(cstr(31), deviceRecord, urbSession).map(([busid, device, s]) => ({
    client: [{ kind: "OP_REQ_IMPORT", busid } as ClientMessage, ...s.client],
    server: [{ kind: "OP_REP_IMPORT", status: 0, device } as ServerMessage, ...s.server],
  })),
);
