/**
 * Isochronous device models and the iso paths of the URB server and the relay rules: pacing on
 * a manual clock (no timed assertions), the packed RET_SUBMIT as stub_tx sends it, the UAC1
 * microphone's descriptors and class requests, and the CMD_SUBMIT rules that keep usb_submit_urb
 * from resetting usbip-host's connection.
 */
import test from "ava";
import fc from "fast-check";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { PcapngTrace } from "../trace/writer.js";
import { Direction, Errno, ISO_DESCRIPTOR_SIZE, TransferFlag, URB_HEADER_SIZE } from "../protocol/constants.js";
import { ProtocolError } from "../protocol/errors.js";
import type { CmdSubmit, RetSubmit } from "../protocol/messages.js";
import { checkCmdSubmit, type DeviceView } from "../protocol/relay-rules.js";
import { UrbServer } from "../device/urb-server.js";
import { IsoInStream, type Clock } from "../device/iso-in-stream.js";
import { MIC_CHANNELS, MIC_RATE, MIC_SAMPLES_PER_FRAME, rampFrame, UacMicrophone } from "../device/uac-microphone.js";
import { cameraPacket, frameByte, frameStart, PROBE_LENGTH, UVC_DATA_PER_PACKET, UVC_FPS, UVC_FRAME_BYTES, UVC_HEADER, UVC_HEIGHT, UVC_MAX_PACKET, UVC_WIDTH, UvcCamera } from "../device/uvc-camera.js";
import { UsbHost } from "../host/usb-host.js";
import { UrbRelay } from "../relay/urb-relay.js";
import { parseConfigDescriptor } from "../usb/descriptors.js";
import { isoBytesPerInterval } from "../kernel-glue/endpoints.js";

const DEVID = 0x7f0001;

/** A clock the test moves by hand; timers fire in due order as it passes them. */
class ManualClock implements Clock {
  t = 0;
  private timers: { at: number; fn: () => void; live: boolean }[] = [];
  now(): number {
    return this.t;
  }
  after(ms: number, fn: () => void) {
    const e = { at: this.t + Math.max(0, ms), fn, live: true };
    this.timers.push(e);
    return { clear: () => void (e.live = false) };
  }
  advance(to: number): void {
    for (;;) {
      const due = this.timers.filter((e) => e.live && e.at <= to).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      this.t = Math.max(this.t, due.at);
      due.live = false;
      due.fn();
    }
    this.t = to;
    this.timers = this.timers.filter((e) => e.live);
  }
}

function isoCmd(seqnum: number, lengths: number[], ep = 1): CmdSubmit {
  let off = 0;
  const isoPackets = lengths.map((l) => ({ offset: (off += l) - l, length: l, actualLength: 0, status: 0 }));
  return { kind: "CMD_SUBMIT", seqnum, devid: DEVID, direction: Direction.IN, ep, transferFlags: TransferFlag.DIR_IN | TransferFlag.ISO_ASAP, transferBufferLength: off, startFrame: 0, numberOfPackets: lengths.length, interval: 1, setup: Buffer.alloc(8), payload: [], isoPackets };
}

const settledYet = async (p: Promise<unknown>) => {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
};

test("IsoInStream: a URB of N packets completes N intervals after the one before it, never earlier", async (t) => {
  const clock = new ManualClock();
  const s = new IsoInStream(1, (i, room) => Buffer.alloc(Math.min(4, room), i), clock);
  const a = s.submit(isoCmd(1, [8, 8, 8, 8]));
  const b = s.submit(isoCmd(2, [8, 8]));
  clock.advance(3.9);
  t.false(await settledYet(a.result), "4 packets take 4 ms");
  clock.advance(4);
  t.true(await settledYet(a.result));
  t.false(await settledYet(b.result), "the second URB's packets follow the first's");
  clock.advance(6);
  const rb = await b.result;
  t.deepEqual(rb.isoPackets, [{ actualLength: 4, status: 0 }, { actualLength: 4, status: 0 }]);
  // its packets carry intervals 4 and 5, at their offsets
  t.is(rb.data![0], 4);
  t.is(rb.data![8], 5);
  t.is(rb.startFrame, 4);
  t.is(s.stats.lostIntervals, 0);
});

test("IsoInStream: intervals with no URB queued are lost (counted), the stream does not fall behind the clock", async (t) => {
  const clock = new ManualClock();
  const s = new IsoInStream(1, (i) => Buffer.from([i & 0xff]), clock);
  const a = s.submit(isoCmd(1, [1, 1]));
  clock.advance(2);
  await a.result;
  clock.advance(50); // the host is late by 48 frames
  const b = s.submit(isoCmd(2, [1]));
  clock.advance(51);
  const rb = await b.result;
  t.is(rb.data![0], 50, "the late URB gets the frame the clock is in, not a stale one");
  t.is(s.stats.lostIntervals, 48);
});

test("IsoInStream: cancel takes a queued URB out (cancelled), the next one is still paced; stop ends the rest", async (t) => {
  const clock = new ManualClock();
  const s = new IsoInStream(1, () => Buffer.alloc(1), clock);
  const a = s.submit(isoCmd(1, [1, 1, 1]));
  const b = s.submit(isoCmd(2, [1]));
  const c = s.submit(isoCmd(3, [1]));
  a.cancel();
  t.deepEqual(await a.result, { status: Errno.ECONNRESET, cancelled: true });
  clock.advance(3.5);
  t.false(await settledYet(b.result), "b keeps its slot after a's frames");
  clock.advance(4);
  t.is((await b.result).status, 0);
  s.stop();
  t.is((await c.result).status, Errno.ESHUTDOWN);
  t.is(s.queued, 0);
});

test("uac-microphone: the counter continues across frames: sample frame n carries n (left: low half, right: high half)", (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 26 }), (frame) => {
    const b = Buffer.concat([rampFrame(frame, 192), rampFrame(frame + 1, 192)]);
    for (let i = 0; i < b.length / 4; i++) {
      const n = frame * MIC_SAMPLES_PER_FRAME + i;
      if (b.readUInt16LE(i * 4) !== (n & 0xffff) || b.readUInt16LE(i * 4 + 2) !== n >>> 16) return false;
    }
    return rampFrame(frame, 191).length === 188; // whole sample frames only
  }));
  t.pass();
});

/** Let the streams carry what was written until the microphone holds `n` URBs. */
async function untilQueued(mic: UacMicrophone, n: number): Promise<void> {
  for (let i = 0; i < 1000 && mic.queued < n; i++) await new Promise((r) => setImmediate(r));
  if (mic.queued < n) throw new Error(`the microphone holds ${mic.queued} URBs, not ${n}`);
}

function wire(device: UacMicrophone | UvcCamera, withRelay: boolean) {
  const c2s = new PassThrough();
  const s2c = new PassThrough();
  const server = new UrbServer(device, c2s, s2c);
  server.start();
  if (!withRelay) return { host: new UsbHost(DEVID, s2c, c2s), server };
  const hostOut = new PassThrough();
  const hostIn = new PassThrough();
  // the relay's backend-side rules see the device as the backend relay would
  const relay = new UrbRelay({ clientIn: hostOut, clientOut: hostIn, serverIn: s2c, serverOut: c2s, device: { devid: DEVID, endpoint: (ep, dir) => device.endpoint(ep, dir as Direction), isoPacketLimit: (ep, dir) => device.isoPacketLimit(ep, dir as Direction) } });
  relay.start();
  return { host: new UsbHost(DEVID, hostIn, hostOut), server };
}

for (const withRelay of [false, true]) {
  test(`uac-microphone${withRelay ? " through the relay" : ""}: descriptors as snd-usb-audio reads them, SET_INTERFACE starts the stream, iso IN packed as stub_tx sends it`, async (t) => {
    const clock = new ManualClock();
    const mic = new UacMicrophone(DEVID, "vmic", clock);
    const { host } = wire(mic, withRelay);
    const cfg = await host.control({ bmRequestType: 0x80, bRequest: 6, wValue: 0x0200, wIndex: 0, wLength: 255 });
    const p = parseConfigDescriptor(cfg.data);
    t.deepEqual(p.interfaces.map((i) => [i.bInterfaceNumber, i.bAlternateSetting, i.bInterfaceClass, i.bInterfaceSubClass, i.endpoints.length]), [[0, 0, 1, 1, 0], [1, 0, 1, 2, 0], [1, 1, 1, 2, 1]]);
    const ep = p.interfaces[2]!.endpoints[0]!;
    t.deepEqual([ep.bEndpointAddress, ep.bmAttributes & 3, ep.wMaxPacketSize, ep.bInterval], [0x81, 1, 192, 1]);
    t.deepEqual(ep.audio, { bRefresh: 0, bSynchAddress: 0 });
    t.is(ep.extra?.[1], 0x25, "the CS_ENDPOINT descriptor follows the endpoint");
    // format type I: 2 channels, 16 bits, 48000 Hz
    const fmt = p.interfaces[2]!.others.find((o) => o.type === 0x24 && o.bytes[2] === 2)!.bytes;
    t.deepEqual([fmt[4], fmt[6], fmt.readUIntLE(8, 3)], [MIC_CHANNELS, 16, MIC_RATE]);
    t.is((await host.control({ bmRequestType: 0, bRequest: 9, wValue: 1, wIndex: 0, wLength: 0 })).status, 0);
    // alternate 0: no endpoint yet; an iso URB for it is refused before the device sees it
    t.is(mic.endpoint(1, Direction.IN), undefined);
    t.is((await host.control({ bmRequestType: 0x01, bRequest: 11, wValue: 1, wIndex: 1, wLength: 0 })).status, 0);
    t.is((await host.control({ bmRequestType: 0x81, bRequest: 10, wValue: 0, wIndex: 1, wLength: 1 })).data[0], 1, "GET_INTERFACE");
    t.is(mic.starts, 1);
    // UAC1 sampling frequency on the endpoint: SET_CUR 44100 is recorded, GET_CUR keeps 48000
    t.is((await host.control({ bmRequestType: 0x22, bRequest: 0x01, wValue: 0x0100, wIndex: 0x81, wLength: 3 }, Buffer.from([0x44, 0xac, 0x00]))).status, 0);
    t.is(mic.requestedRate, 44100);
    t.is((await host.control({ bmRequestType: 0xa2, bRequest: 0x81, wValue: 0x0100, wIndex: 0x81, wLength: 3 })).data.readUIntLE(0, 3), MIC_RATE);
    // snd-usb-audio's capture URBs: a few packets of maxpacket (here with a short last one: whole samples that fit)
    const urb = host.submit(1, Direction.IN, 0, { isoLengths: [192, 192, 101] });
    await untilQueued(mic, 1);
    clock.advance(3);
    const r: RetSubmit = await urb;
    t.is(r.status, 0);
    t.is(r.numberOfPackets, 3);
    t.is(r.errorCount, 0);
    t.is(r.actualLength, 192 + 192 + 100);
    t.deepEqual(r.isoPackets!.map((d) => [d.offset, d.length, d.actualLength, d.status]), [[0, 192, 192, 0], [192, 192, 192, 0], [384, 101, 100, 0]]);
    // packed: 96 + 25 sample frames in a row, the counter from 0 (the third frame's first 25)
    const data = Buffer.concat(r.payload);
    t.is(data.length, 484);
    t.true([...Array(121).keys()].every((i) => data.readUInt32LE(i * 4) === i));
    await mic.close();
    host.close();
  });
}

test("uac-microphone: a packet longer than wMaxPacketSize ends the session with the rule and offset before the device sees it", async (t) => {
  const mic = new UacMicrophone(DEVID, "vmic", new ManualClock());
  const { host, server } = wire(mic, false);
  await host.control({ bmRequestType: 0, bRequest: 9, wValue: 1, wIndex: 0, wLength: 0 });
  await host.control({ bmRequestType: 0x01, bRequest: 11, wValue: 1, wIndex: 1, wLength: 0 });
  void host.submit(1, Direction.IN, 0, { isoLengths: [192, 193] }).catch(() => undefined);
  const r = await server.done;
  t.is(r.reason, "violation");
  t.is(r.violation?.code, "USBIP_ERR_ISO_PACKET_LENGTH");
  t.regex(r.violation!.message, /iso packet 1: length 193 exceeds the endpoint's 192 bytes per interval/);
  t.is(mic.queued, 0);
  host.close();
});

test("uac-microphone: an unlinked iso URB gets RET_UNLINK -ECONNRESET, the stream goes on", async (t) => {
  const clock = new ManualClock();
  const mic = new UacMicrophone(DEVID, "vmic", clock);
  const { host } = wire(mic, false);
  await host.control({ bmRequestType: 0, bRequest: 9, wValue: 1, wIndex: 0, wLength: 0 });
  await host.control({ bmRequestType: 0x01, bRequest: 11, wValue: 1, wIndex: 1, wLength: 0 });
  let victim = 0;
  const a = host.submit(1, Direction.IN, 0, { isoLengths: [192, 192], onSeqnum: (s) => (victim = s) });
  const b = host.submit(1, Direction.IN, 0, { isoLengths: [192] });
  await untilQueued(mic, 2);
  t.is(await host.unlink(victim), Errno.ECONNRESET);
  t.is((await a).status, Errno.ECONNRESET);
  clock.advance(3);
  const rb = await b;
  t.is(rb.status, 0);
  t.is(Buffer.concat(rb.payload).readUInt32LE(0), 2 * MIC_SAMPLES_PER_FRAME, "b kept its frame (the third)");
  await mic.close();
  host.close();
});

// ---- the backend relay's iso CMD_SUBMIT rules -------------------------------------------

const isoView: DeviceView = { devid: DEVID, endpoint: (ep) => (ep === 0 ? "control" : ep === 1 ? "iso" : undefined), isoPacketLimit: () => 96 };

function refused(cmd: CmdSubmit): ProtocolError {
  try {
    checkCmdSubmit(cmd, isoView, 1000);
  } catch (e) {
    if (e instanceof ProtocolError) return e;
    throw e;
  }
  throw new Error("not refused");
}

test("relay rules: an iso CMD_SUBMIT with 0 packets is refused at number_of_packets (usb_submit_urb: -EINVAL)", (t) => {
  const e = refused({ ...isoCmd(7, []), transferBufferLength: 96 });
  t.is(e.code, "USBIP_ERR_PACKET_COUNT");
  t.is(e.offset, 1000 + 32);
  t.is(e.seqnum, 7);
});

test("relay rules: an iso packet longer than the endpoint moves per interval is refused at its length field", (t) => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 96 }), { minLength: 1, maxLength: 30 }), fc.nat(), fc.integer({ min: 97, max: 3072 }), (lengths, k, bad) => {
    const at = k % lengths.length;
    const l = [...lengths];
    l[at] = bad;
    const e = refused(isoCmd(3, l));
    // IN: the descriptors follow the header; the length is bytes 4..7 of descriptor `at`
    return e.code === "USBIP_ERR_ISO_PACKET_LENGTH" && e.offset === 1000 + URB_HEADER_SIZE + at * ISO_DESCRIPTOR_SIZE + 4;
  }));
  // within the limit: accepted
  t.notThrows(() => checkCmdSubmit(isoCmd(3, [96, 96, 0]), isoView, 0));
});

test("relay rules: iso packet lengths summing above transfer_buffer_length are refused at the first descriptor (OUT: after the data)", (t) => {
  const cmd: CmdSubmit = { ...isoCmd(4, [96, 96]), direction: Direction.OUT, transferFlags: TransferFlag.ISO_ASAP, transferBufferLength: 150, payload: [Buffer.alloc(150)] };
  cmd.isoPackets = [{ offset: 0, length: 96, actualLength: 0, status: 0 }, { offset: 0, length: 96, actualLength: 0, status: 0 }];
  const e = refused(cmd);
  t.is(e.code, "USBIP_ERR_ISO_DESCRIPTOR");
  t.is(e.offset, 1000 + URB_HEADER_SIZE + 150);
});

test("sysfs iso limit: wMaxPacketSize size bits × high-bandwidth transactions at 480, × 48 above", (t) => {
  t.is(isoBytesPerInterval(0x0060, 12), 96);
  t.is(isoBytesPerInterval(0x1400, 480), 3 * 1024); // 0x1400: 1024 bytes, 2 extra transactions
  t.is(isoBytesPerInterval(0x0800 | 0x200, 480), 2 * 512);
  t.is(isoBytesPerInterval(0x0400, 5000), 1024 * 48);
});

// ---- tracing an iso session -----------------------------------------------------------

test("trace: an iso IN session through the relay is pcapng tshark decodes, iso descriptors and data in place, nothing malformed", async (t) => {
  if (spawnSync("sh", ["-c", "command -v tshark"]).status !== 0) {
    t.log("tshark not installed (apt-get install tshark): pcapng not checked with Wireshark's dissectors");
    t.pass();
    return;
  }
  const dir = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-iso-trace-"));
  try {
    const file = path.join(dir, "mic.pcapng");
    const trace = PcapngTrace.open(file);
    const clock = new ManualClock();
    const mic = new UacMicrophone(DEVID, "vmic", clock);
    const c2s = new PassThrough();
    const s2c = new PassThrough();
    const server = new UrbServer(mic, c2s, s2c);
    server.start();
    const hostOut = new PassThrough();
    const hostIn = new PassThrough();
    const relay = new UrbRelay({ clientIn: hostOut, clientOut: hostIn, serverIn: s2c, serverOut: c2s, onMessage: (_f, m, urb) => trace.record(m, { urb }) });
    relay.start();
    const host = new UsbHost(DEVID, hostIn, hostOut);
    await host.control({ bmRequestType: 0, bRequest: 9, wValue: 1, wIndex: 0, wLength: 0 });
    await host.control({ bmRequestType: 0x01, bRequest: 11, wValue: 1, wIndex: 1, wLength: 0 });
    const urb = host.submit(1, Direction.IN, 0, { isoLengths: [192, 192, 101] });
    await untilQueued(mic, 1);
    clock.advance(3);
    await urb;
    await mic.close();
    host.close();
    await trace.close();
    const text = execFileSync("tshark", ["-r", file, "-V"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    t.notRegex(text, /Malformed|Exception/);
    const frames = text.split(/\n(?=Frame \d+:)/).filter((f) => /URB transfer type: URB_ISOCHRONOUS/.test(f));
    t.is(frames.length, 2, "the iso submit and its completion");
    const done = frames[1]!;
    t.regex(done, /Number of ISO descriptors: 3/);
    // descriptor 2 of the completion: offset 384, actual length 100
    t.regex(done, /USB isodesc 2 \[Success\] \(100 bytes\)[\s\S]*?Offset \[bytes\]: 384/);
    // the data at packet 1's offset (192) is the counter's sample frame 48
    const hex = execFileSync("tshark", ["-r", file, "-Y", "usb.iso.data", "-T", "fields", "-e", "usb.iso.data"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    t.true(hex.replace(/[:,]/g, "").includes("30000000" + "31000000"), `iso data fields: ${hex.slice(0, 120)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- the UVC camera ----------------------------------------------------------------------

test("uvc-camera: byte i of frame f is (f + i) & 0xff after the frame number; any microframe's packet is a 2-byte header and the frame's bytes at its offset (property)", (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 22 }), (m) => {
    const p = cameraPacket(m, UVC_MAX_PACKET);
    if (p[0] !== 2 || (p[1]! & UVC_HEADER.EOH) === 0 || p.length > UVC_MAX_PACKET) return false;
    // the frame that started last (frameStart(f) <= m < frameStart(f + 1)), its packet number k
    const f = Math.floor((m * UVC_FPS) / 8000);
    if (!(frameStart(f) <= m && m < frameStart(f + 1))) return false;
    if ((p[1]! & UVC_HEADER.FID) !== (f & 1)) return false;
    const from = (m - frameStart(f)) * UVC_DATA_PER_PACKET;
    return p.subarray(2).every((b, i) => b === frameByte(f, from + i));
  }));
  // one whole frame, reassembled from its microframes, is the frame's bytes, EOF on the last data packet only
  for (const f of [0, 1, 2, 29, 30, 12345]) {
    const first = frameStart(f);
    const next = frameStart(f + 1);
    t.true(next - first === 266 || next - first === 267, "30 frames/s of 8000 microframes");
    const packets = Array.from({ length: next - first }, (_, k) => cameraPacket(first + k, UVC_MAX_PACKET));
    t.true(packets.every((p) => (p[1]! & UVC_HEADER.FID) === (f & 1)), `frame ${f}: one FID`);
    const data = Buffer.concat(packets.map((p) => p.subarray(2)));
    t.is(data.length, UVC_FRAME_BYTES);
    t.is(data.readUInt32LE(0), f);
    t.true(data.subarray(4).every((b, i) => b === ((f + i + 4) & 0xff)), `frame ${f}: pattern`);
    const eofs = packets.map((p, k) => ((p[1]! & UVC_HEADER.EOF) !== 0 ? k : -1)).filter((k) => k >= 0);
    t.deepEqual(eofs, [Math.ceil(UVC_FRAME_BYTES / UVC_DATA_PER_PACKET) - 1], `frame ${f}: EOF`);
    t.true(packets.slice(eofs[0]! + 1).every((p) => p.length === 2), `frame ${f}: header-only packets until the next frame`);
  }
});

for (const withRelay of [false, true]) {
  test(`uvc-camera${withRelay ? " through the relay" : ""}: descriptors as uvcvideo reads them, probe/commit answered, SET_INTERFACE starts a paced stream of numbered frames`, async (t) => {
    const clock = new ManualClock();
    const cam = new UvcCamera(DEVID, "vcam", clock);
    const { host } = wire(cam, withRelay);
    const dev = await host.control({ bmRequestType: 0x80, bRequest: 6, wValue: 0x0100, wIndex: 0, wLength: 18 });
    t.is(dev.data.readUInt16LE(2), 0x0200, "bcdUSB 2.00 (high speed)");
    t.is(cam.speed, "480");
    const cfg = await host.control({ bmRequestType: 0x80, bRequest: 6, wValue: 0x0200, wIndex: 0, wLength: 255 });
    const p = parseConfigDescriptor(cfg.data);
    t.deepEqual(p.interfaces.map((i) => [i.bInterfaceNumber, i.bAlternateSetting, i.bInterfaceClass, i.bInterfaceSubClass, i.endpoints.length]), [[0, 0, 14, 1, 0], [1, 0, 14, 2, 0], [1, 1, 14, 2, 1]]);
    const ep = p.interfaces[2]!.endpoints[0]!;
    t.deepEqual([ep.bEndpointAddress, ep.bmAttributes & 3, ep.wMaxPacketSize, ep.bInterval], [0x81, 1, UVC_MAX_PACKET, 1]);
    // the class-specific descriptors: each one's bLength walks to the next, totals as declared
    const walk = (b: Buffer) => {
      const out: Buffer[] = [];
      for (let o = 0; o < b.length; o += b[o]!) out.push(b.subarray(o, o + b[o]!));
      return out;
    };
    const vc = walk(Buffer.concat(p.interfaces[0]!.others.map((o) => o.bytes)));
    t.deepEqual(vc.map((d) => d[2]), [1, 2, 3], "VC header, camera terminal, streaming output terminal");
    t.is(vc[0]!.readUInt16LE(5), vc.reduce((n, d) => n + d.length, 0), "VC wTotalLength");
    const vs = walk(Buffer.concat(p.interfaces[1]!.others.map((o) => o.bytes)));
    t.deepEqual(vs.map((d) => d[2]), [1, 4, 5], "VS input header, uncompressed format, frame");
    t.is(vs[0]!.readUInt16LE(4), vs.reduce((n, d) => n + d.length, 0), "VS wTotalLength");
    t.deepEqual([vs[2]!.readUInt16LE(5), vs[2]!.readUInt16LE(7), vs[2]!.readUInt32LE(17)], [UVC_WIDTH, UVC_HEIGHT, UVC_FRAME_BYTES]);
    t.is((await host.control({ bmRequestType: 0, bRequest: 9, wValue: 1, wIndex: 0, wLength: 0 })).status, 0);
    // uvcvideo's probe: GET_DEF, SET_CUR, GET_CUR; then the commit
    const def = await host.control({ bmRequestType: 0xa1, bRequest: 0x87, wValue: 0x0100, wIndex: 1, wLength: PROBE_LENGTH });
    t.deepEqual([def.data[2], def.data[3], def.data.readUInt32LE(4), def.data.readUInt32LE(18), def.data.readUInt32LE(22)], [1, 1, 333333, UVC_FRAME_BYTES, UVC_MAX_PACKET]);
    t.is((await host.control({ bmRequestType: 0x21, bRequest: 0x01, wValue: 0x0100, wIndex: 1, wLength: PROBE_LENGTH }, def.data)).status, 0);
    t.true(cam.probe?.equals(def.data));
    t.is((await host.control({ bmRequestType: 0x21, bRequest: 0x01, wValue: 0x0200, wIndex: 1, wLength: PROBE_LENGTH }, def.data)).status, 0);
    t.true(cam.commit?.equals(def.data));
    t.is((await host.control({ bmRequestType: 0xa1, bRequest: 0x85, wValue: 0x0100, wIndex: 1, wLength: 2 })).data.readUInt16LE(0), PROBE_LENGTH, "GET_LEN");
    // an unknown control stalls
    t.not((await host.control({ bmRequestType: 0xa1, bRequest: 0x81, wValue: 0x0500, wIndex: 1, wLength: 4 })).status, 0);
    t.is((await host.control({ bmRequestType: 0x01, bRequest: 11, wValue: 1, wIndex: 1, wLength: 0 })).status, 0);
    t.is(cam.starts, 1);
    // 64 microframes of 1024 (what uvcvideo submits, 8 ms): frame 0's first 64 packets' data, paced
    const urb = host.submit(1, Direction.IN, 0, { isoLengths: Array(64).fill(UVC_MAX_PACKET) });
    for (let i = 0; i < 1000 && cam.queued < 1; i++) await new Promise((r) => setImmediate(r));
    clock.advance(7.9);
    t.false(await settledYet(urb), "not before its 64 microframes went by");
    clock.advance(8);
    const r = await urb;
    t.is(r.status, 0);
    t.is(r.numberOfPackets, 64);
    const lens = r.isoPackets!.map((d) => d.actualLength);
    const dataPackets = Math.ceil(UVC_FRAME_BYTES / UVC_DATA_PER_PACKET);
    t.deepEqual(lens.slice(0, dataPackets - 1), Array(dataPackets - 1).fill(UVC_MAX_PACKET));
    t.true(lens.slice(dataPackets).every((l) => l === 2), "header-only packets after the frame");
    const frame = Buffer.concat(r.isoPackets!.map((d, k) => Buffer.concat(r.payload).subarray(r.isoPackets!.slice(0, k).reduce((n, x) => n + x.actualLength, 0) + 2, r.isoPackets!.slice(0, k).reduce((n, x) => n + x.actualLength, 0) + d.actualLength)));
    t.is(frame.length, UVC_FRAME_BYTES);
    t.is(frame.readUInt32LE(0), 0);
    await cam.close();
    host.close();
  });
}
