/**
 * Hex fixtures, one per message type, with a comment per field. Each is decoded whole and
 * after being split at every byte offset, compared field by field, and re-encoded to the
 * same bytes.
 */
import test from "ava";
import { encodeAll, decodePair } from "./helpers/session.js";
import { hex, normalize } from "./helpers/fixtures.js";
import type { ClientMessage, ServerMessage } from "../protocol/messages.js";
import type { ClientDecoderOptions } from "../protocol/client-decoder.js";
import type { ServerDecoderOptions } from "../protocol/server-decoder.js";

interface Fixture {
  name: string;
  /** bytes of the client stream fed first (context for RET_*), if any */
  context?: Buffer;
  from: "client" | "server";
  bytes: Buffer;
  clientPhase?: ClientDecoderOptions["phase"];
  serverPhase?: ServerDecoderOptions["phase"];
  expect: ClientMessage | ServerMessage;
  /** what the encoder writes back when it differs from `bytes` (normalised fields) */
  reencoded?: Buffer;
}

const DEVICE_HEX = [
  "ascii /sys/devices/platform/dummy_hcd.0/usb1/1-1", // path (42 chars) ...
  "zeros 214", //                                       ... NUL-padded to 256
  "ascii 1-1", //                                       busid ...
  "zeros 29", //                                        ... NUL-padded to 32
  "00000001", // busnum 1
  "00000002", // devnum 2
  "00000003", // speed 3 = USB_SPEED_HIGH
  "1d6b", //     idVendor
  "0104", //     idProduct
  "0601", //     bcdDevice
  "00", //       bDeviceClass
  "00", //       bDeviceSubClass
  "00", //       bDeviceProtocol
  "01", //       bConfigurationValue
  "01", //       bNumConfigurations
  "01", //       bNumInterfaces
];
const DEVICE = {
  path: "/sys/devices/platform/dummy_hcd.0/usb1/1-1",
  busid: "1-1",
  busnum: 1,
  devnum: 2,
  speed: 3,
  idVendor: 0x1d6b,
  idProduct: 0x0104,
  bcdDevice: 0x0601,
  bDeviceClass: 0,
  bDeviceSubClass: 0,
  bDeviceProtocol: 0,
  bConfigurationValue: 1,
  bNumConfigurations: 1,
  bNumInterfaces: 1,
};

// CMD_SUBMIT bulk IN (seqnum 0x10) and ISO IN (seqnum 0x20) used as context for RET fixtures.
const CMD_BULK_IN = hex([
  "00000001 00000010 00010002 00000001 00000001", // CMD_SUBMIT, seqnum 16, devid 1-2, IN, ep 1
  "00000200 00000200 00000000 00000000 00000000", // flags DIR_IN, length 512, start_frame 0, np 0, interval 0
  "0000000000000000", //                             setup (unused)
]);
const CMD_BULK_OUT = hex([
  "00000001 00000011 00010002 00000000 00000002", // CMD_SUBMIT, seqnum 17, devid 1-2, OUT, ep 2
  "00000000 00000004 00000000 00000000 00000000", // flags 0, length 4, start_frame 0, np 0, interval 0
  "0000000000000000", //                             setup (unused)
  "deadbeef", //                                     4 bytes OUT payload
]);
const CMD_ISO_IN = hex([
  "00000001 00000020 00010002 00000001 00000003", // CMD_SUBMIT, seqnum 32, devid 1-2, IN, ep 3
  "00000002 00000040 00000010 00000002 00000001", // flags ISO_ASAP, length 64, start_frame 16, np 2, interval 1
  "0000000000000000", //                             setup (unused)
  "00000000 00000020 00000000 00000000", //          iso[0]: offset 0, length 32, actual 0, status 0
  "00000020 00000020 00000000 00000000", //          iso[1]: offset 32, length 32, actual 0, status 0
]);
const CMD_UNLINK_HEX = hex([
  "00000002 00000030 00010002 00000000 00000000", // CMD_UNLINK, seqnum 48, devid 1-2, dir 0, ep 0
  "00000010", //                                     unlink_seqnum 16
  "zeros 24", //                                     padding
]);

const fixtures: Fixture[] = [
  {
    name: "OP_REQ_DEVLIST",
    from: "client",
    clientPhase: "op",
    bytes: hex(["0111", "8005", "00000000"]), // version 1.1.1, OP_REQ_DEVLIST, status 0
    expect: { kind: "OP_REQ_DEVLIST" },
  },
  {
    name: "OP_REP_DEVLIST with one device and one interface",
    from: "server",
    serverPhase: "op",
    bytes: hex([
      "0111 0005 00000000", // version, OP_REP_DEVLIST, status ST_OK
      "00000001", //           ndev 1
      ...DEVICE_HEX,
      "08 06 50 00", //        interface: class 8 (mass storage), subclass 6 (SCSI), protocol 0x50 (BOT), padding
    ]),
    expect: { kind: "OP_REP_DEVLIST", status: 0, devices: [{ ...DEVICE, interfaces: [{ bInterfaceClass: 8, bInterfaceSubClass: 6, bInterfaceProtocol: 0x50 }] }] },
  },
  {
    name: "OP_REQ_IMPORT",
    from: "client",
    clientPhase: "op",
    bytes: hex(["0111 8003 00000000", "ascii 1-1", "zeros 29"]), // header, busid "1-1" NUL-padded to 32
    expect: { kind: "OP_REQ_IMPORT", busid: "1-1" },
  },
  {
    name: "OP_REP_IMPORT, 8-byte error form",
    from: "server",
    serverPhase: "op",
    bytes: hex(["0111", "0003", "00000004"]), // version, OP_REP_IMPORT, status ST_NODEV
    expect: { kind: "OP_REP_IMPORT", status: 4 },
  },
  {
    name: "OP_REP_IMPORT, 320-byte form",
    from: "server",
    serverPhase: "op",
    bytes: hex(["0111 0003 00000000", ...DEVICE_HEX]), // header status 0, then the device record
    expect: { kind: "OP_REP_IMPORT", status: 0, device: DEVICE },
  },
  {
    name: "qrexec handshake line",
    from: "server",
    serverPhase: "handshake",
    bytes: hex(["ascii 65538 480", "0a"]), // devid 1<<16|2, high speed, '\n'
    expect: { kind: "HANDSHAKE", devid: 65538, speed: "480" },
  },
  {
    name: "CMD_SUBMIT control IN (GET_DESCRIPTOR device)",
    from: "client",
    bytes: hex([
      "00000001", // command CMD_SUBMIT
      "00000001", // seqnum 1
      "00010002", // devid busnum 1 << 16 | devnum 2
      "00000001", // direction IN
      "00000000", // ep 0
      "00000200", // transfer_flags USBIP_URB_DIR_IN
      "00000012", // transfer_buffer_length 18
      "00000000", // start_frame 0
      "00000000", // number_of_packets 0
      "00000000", // interval 0
      "8006000100001200", // setup: bmRequestType 0x80, GET_DESCRIPTOR, wValue 0x0100, wIndex 0, wLength 18 (LE)
    ]),
    expect: {
      kind: "CMD_SUBMIT", seqnum: 1, devid: 0x10002, direction: 1, ep: 0, transferFlags: 0x200, transferBufferLength: 18,
      startFrame: 0, numberOfPackets: 0, interval: 0, setup: Buffer.from("8006000100001200", "hex"), payload: [],
    },
  },
  {
    name: "CMD_SUBMIT bulk OUT with payload",
    from: "client",
    bytes: CMD_BULK_OUT,
    expect: {
      kind: "CMD_SUBMIT", seqnum: 17, devid: 0x10002, direction: 0, ep: 2, transferFlags: 0, transferBufferLength: 4,
      startFrame: 0, numberOfPackets: 0, interval: 0, setup: Buffer.alloc(8), payload: [Buffer.from("deadbeef", "hex")],
    },
  },
  {
    name: "CMD_SUBMIT interrupt IN with start_frame -1 and number_of_packets 0xffffffff",
    from: "client",
    bytes: hex([
      "00000001 00000d05 0001000f 00000001 00000001", // CMD_SUBMIT, seqnum 0xd05, devid, IN, ep 1
      "00000200 00000040", // flags DIR_IN, length 64
      "ffffffff", //          start_frame -1 (usb_fill_int_urb)
      "ffffffff", //          number_of_packets 0xffffffff: non-ISO, accepted and normalised to 0
      "00000004", //          interval 4
      "0000000000000000", //  setup (unused)
    ]),
    expect: {
      kind: "CMD_SUBMIT", seqnum: 0xd05, devid: 0x1000f, direction: 1, ep: 1, transferFlags: 0x200, transferBufferLength: 64,
      startFrame: -1, numberOfPackets: 0, interval: 4, setup: Buffer.alloc(8), payload: [],
    },
    // the encoder emits 0 for a non-ISO URB
    reencoded: hex(["00000001 00000d05 0001000f 00000001 00000001 00000200 00000040 ffffffff", "00000000", "00000004 0000000000000000"]),
  },
  {
    name: "CMD_SUBMIT ISO IN with two descriptors",
    from: "client",
    bytes: CMD_ISO_IN,
    expect: {
      kind: "CMD_SUBMIT", seqnum: 32, devid: 0x10002, direction: 1, ep: 3, transferFlags: 2, transferBufferLength: 64,
      startFrame: 16, numberOfPackets: 2, interval: 1, setup: Buffer.alloc(8), payload: [],
      isoPackets: [{ offset: 0, length: 32, actualLength: 0, status: 0 }, { offset: 32, length: 32, actualLength: 0, status: 0 }],
    },
  },
  {
    name: "CMD_UNLINK",
    from: "client",
    context: CMD_BULK_IN,
    bytes: CMD_UNLINK_HEX,
    expect: { kind: "CMD_UNLINK", seqnum: 48, devid: 0x10002, direction: 0, ep: 0, unlinkSeqnum: 16 },
  },
  {
    name: "RET_SUBMIT bulk IN with payload",
    from: "server",
    context: CMD_BULK_IN,
    bytes: hex([
      "00000003", // command RET_SUBMIT
      "00000010", // seqnum 16 (answers the bulk IN)
      "00000000 00000000 00000000", // devid, direction, ep: 0 on the wire
      "00000000", // status 0
      "00000003", // actual_length 3
      "00000000", // start_frame 0
      "00000000", // number_of_packets 0
      "00000000", // error_count 0
      "0000000000000000", // padding
      "414243", // 3 bytes IN data
    ]),
    expect: {
      kind: "RET_SUBMIT", seqnum: 16, devid: 0, direction: 0, ep: 0, status: 0, actualLength: 3, startFrame: 0, numberOfPackets: 0,
      errorCount: 0, payload: [Buffer.from("ABC")],
    },
  },
  {
    name: "RET_SUBMIT bulk OUT (no payload)",
    from: "server",
    context: CMD_BULK_OUT,
    bytes: hex([
      "00000003 00000011 00000000 00000000 00000000", // RET_SUBMIT, seqnum 17, zeros
      "00000000", //  status 0
      "00000004", //  actual_length 4 (bytes written; no data follows for OUT)
      "00000000 00000000 00000000", // start_frame, number_of_packets, error_count
      "0000000000000000", // padding
    ]),
    expect: { kind: "RET_SUBMIT", seqnum: 17, devid: 0, direction: 0, ep: 0, status: 0, actualLength: 4, startFrame: 0, numberOfPackets: 0, errorCount: 0, payload: [] },
  },
  {
    name: "RET_SUBMIT stall",
    from: "server",
    context: CMD_BULK_IN,
    bytes: hex([
      "00000003 00000010 00000000 00000000 00000000", // RET_SUBMIT, seqnum 16
      "ffffffe0", // status -32 (-EPIPE, stall)
      "00000000 00000000 00000000 00000000", // actual_length, start_frame, np, error_count
      "0000000000000000", // padding
    ]),
    expect: { kind: "RET_SUBMIT", seqnum: 16, devid: 0, direction: 0, ep: 0, status: -32, actualLength: 0, startFrame: 0, numberOfPackets: 0, errorCount: 0, payload: [] },
  },
  {
    name: "RET_SUBMIT ISO IN, packed data and descriptors",
    from: "server",
    context: CMD_ISO_IN,
    bytes: hex([
      "00000003 00000020 00000000 00000000 00000000", // RET_SUBMIT, seqnum 32
      "00000000", // status 0
      "00000006", // actual_length 6 = 4 + 2
      "00000010", // start_frame 16
      "00000002", // number_of_packets 2 (as submitted)
      "00000000", // error_count 0
      "0000000000000000", // padding
      "01020304 0506", // packed data: packet 0's 4 bytes, packet 1's 2 bytes (gaps removed)
      "00000000 00000020 00000004 00000000", // iso[0]: offset 0, length 32, actual 4, status 0
      "00000020 00000020 00000002 00000000", // iso[1]: offset 32, length 32, actual 2, status 0
    ]),
    expect: {
      kind: "RET_SUBMIT", seqnum: 32, devid: 0, direction: 0, ep: 0, status: 0, actualLength: 6, startFrame: 16, numberOfPackets: 2, errorCount: 0,
      payload: [Buffer.from("010203040506", "hex")],
      isoPackets: [{ offset: 0, length: 32, actualLength: 4, status: 0 }, { offset: 32, length: 32, actualLength: 2, status: 0 }],
    },
  },
  {
    name: "RET_UNLINK",
    from: "server",
    context: Buffer.concat([CMD_BULK_IN, CMD_UNLINK_HEX]),
    bytes: hex([
      "00000004 00000030 00000000 00000000 00000000", // RET_UNLINK, seqnum 48 (the CMD_UNLINK's), zeros
      "ffffff98", // status -104 (-ECONNRESET: cancelled)
      "zeros 24", // padding
    ]),
    expect: { kind: "RET_UNLINK", seqnum: 48, devid: 0, direction: 0, ep: 0, status: -104 },
  },
];

function run(f: Fixture, chunks: Buffer[]) {
  const opts = { client: { phase: f.clientPhase ?? "urb" }, server: { phase: f.serverPhase ?? "urb" } } as const;
  if (f.from === "client") {
    const pre = f.context ? [f.context] : [];
    return decodePair([...pre, ...chunks], [], opts);
  }
  return decodePair(f.context ? [f.context] : [], chunks, opts);
}

for (const f of fixtures) {
  test(`fixture: ${f.name} decodes, at every split, and re-encodes identically`, (t) => {
    const whole = run(f, [f.bytes]);
    t.is(whole.clientError, null);
    t.is(whole.serverError, null);
    const got = f.from === "client" ? whole.client.at(-1) : whole.server.at(-1);
    t.truthy(got);
    t.deepEqual(normalize(got!), normalize(f.expect));
    t.true(encodeAll([got!]).equals(f.reencoded ?? f.bytes), "re-encoded bytes differ");
    for (let cut = 1; cut < f.bytes.length; cut++) {
      const split = run(f, [f.bytes.subarray(0, cut), f.bytes.subarray(cut)]);
      const m = f.from === "client" ? split.client.at(-1) : split.server.at(-1);
      if (split.clientError || split.serverError || m === undefined) {
        t.fail(`split at ${cut}: ${split.clientError?.message ?? split.serverError?.message ?? "no message"}`);
        return;
      }
      t.deepEqual(normalize(m), normalize(f.expect), `split at ${cut}`);
    }
    // byte by byte, too
    const bytewise = run(f, [...f.bytes].map((b) => Buffer.from([b])));
    t.deepEqual(normalize((f.from === "client" ? bytewise.client : bytewise.server).at(-1)!), normalize(f.expect));
  });
}
