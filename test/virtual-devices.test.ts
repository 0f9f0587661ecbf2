/**
 * Issue 5 on the host: the URB server's unlink semantics against a device whose transfers we
 * complete by hand, the mass-storage and keyboard models driven by our userspace host (in
 * process, over a validating relay), descriptor encode/parse round trips (fast-check), and the
 * probe / demo / export --virtual commands end to end.
 */
import test from "ava";
import fc from "fast-check";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { Direction, Errno, TransferFlag } from "../protocol/constants.js";
import type { CmdSubmit } from "../protocol/messages.js";
import { encodeToBuffer } from "../protocol/encoder.js";
import { UrbServer } from "../device/urb-server.js";
import { STREAM_BUFFER } from "../shared/backpressure.js";
import { callbackHandle, type UrbDevice, type UrbHandle, type UrbResult } from "../device/urb-device.js";
import { MassStorageDevice } from "../device/mass-storage.js";
import { HidKeyboard, reportsFor } from "../device/hid-keyboard.js";
import { UsbHost } from "../host/usb-host.js";
import { enumerate } from "../host/enumerate.js";
import { BotClient } from "../host/bot-client.js";
import { UrbRelay } from "../relay/urb-relay.js";
import { encodeConfigDescriptor, encodeDeviceDescriptor, parseConfigDescriptor, parseDeviceDescriptor, type DeviceDesc } from "../usb/descriptors.js";
import { runCli } from "./helpers/cli.js";
import { hasIsochronous } from "../kernel-glue/usb-devices.js";

const tmp = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-virt-"));
const DEVID = 0x7f0001;

/** host ↔ server on in-memory streams, optionally with the relay in between. */
function wire(device: UrbDevice, withRelay = true) {
  const c2s = new PassThrough();
  const s2c = new PassThrough();
  const server = new UrbServer(device, c2s, s2c);
  server.start();
  if (!withRelay) return { host: new UsbHost(device.devid, s2c, c2s), server, relay: undefined };
  const hostOut = new PassThrough();
  const hostIn = new PassThrough();
  const relay = new UrbRelay({ clientIn: hostOut, clientOut: hostIn, serverIn: s2c, serverOut: c2s });
  relay.start();
  return { host: new UsbHost(device.devid, hostIn, hostOut), server, relay };
}

/** A device with one bulk IN endpoint whose transfers complete when the test says so. */
class ManualDevice implements UrbDevice {
  readonly devid = DEVID;
  readonly speed = "480" as const;
  readonly pending = new Map<number, { resolve: (r: UrbResult) => void; cancelled: boolean }>();
  /**
   * @param settleOnCancel a cancel completes the transfer at once (-ECONNRESET), as libusb's does
   * @param viaCallback results told through listen() as usbfs URBs are (device/urb-device.ts callbackHandle), not through a promise
   */
  constructor(
    private readonly settleOnCancel = false,
    private readonly viaCallback = false,
  ) {}
  record() {
    return { path: "/x", busid: "m", busnum: 0x7f, devnum: 1, speed: 3, idVendor: 1, idProduct: 2, bcdDevice: 0, bDeviceClass: 0, bDeviceSubClass: 0, bDeviceProtocol: 0, bConfigurationValue: 1, bNumConfigurations: 1, bNumInterfaces: 0, interfaces: [] };
  }
  endpoint(ep: number, dir: Direction) {
    return ep === 0 ? ("control" as const) : ep === 1 && dir === Direction.IN ? ("bulk" as const) : undefined;
  }
  submit(cmd: CmdSubmit): UrbHandle {
    if (this.viaCallback)
      return callbackHandle((settle) => {
        const entry = { resolve: settle, cancelled: false };
        this.pending.set(cmd.seqnum, entry);
        return {
          cancel: () => {
            entry.cancelled = true;
            if (this.settleOnCancel) settle({ status: Errno.ECONNRESET, cancelled: true });
          },
        };
      });
    let entry!: { resolve: (r: UrbResult) => void; cancelled: boolean };
    const result = new Promise<UrbResult>((resolve) => (entry = { resolve, cancelled: false }));
    this.pending.set(cmd.seqnum, entry);
    return {
      result,
      cancel: () => {
        entry.cancelled = true;
        if (this.settleOnCancel) entry.resolve({ status: Errno.ECONNRESET, cancelled: true });
      },
    };
  }
  async close() {}
}

for (const [viaCallback, settleOnCancel] of [[false, false], [true, false], [true, true]] as const)
test(`UrbServer: unlink of a URB in flight cancels it: RET_UNLINK -ECONNRESET and no RET_SUBMIT (results ${viaCallback ? "told through listen()" : "as promises"}${settleOnCancel ? ", the cancel settling it at once" : ""})`, async (t) => {
  const dev = new ManualDevice(settleOnCancel, viaCallback);
  const { host } = wire(dev, false);
  let victim = 0;
  const submitted = host.submit(1, Direction.IN, 512, { onSeqnum: (s) => (victim = s) });
  await new Promise((r) => setImmediate(r));
  const unlinked = host.unlink(victim);
  await new Promise((r) => setImmediate(r));
  const p = dev.pending.get(victim)!;
  t.true(p.cancelled, "the device was asked to cancel");
  if (!settleOnCancel) p.resolve({ status: Errno.ECONNRESET, cancelled: true });
  t.is(await unlinked, Errno.ECONNRESET);
  t.is((await submitted).status, Errno.ECONNRESET); // answered by the RET_UNLINK, not a RET_SUBMIT
});

test("UrbServer: a frontend asking for more than 128 MiB of transfer buffers in flight is refused before the device allocates the excess", async (t) => {
  // the session's end cancels the 8 URBs in flight and waits for them (only an unref'd timer
  // otherwise: the test process could run out of work before it fires)
  const dev = new ManualDevice(true);
  const c2s = new PassThrough();
  const s2c = new PassThrough();
  s2c.resume();
  const server = new UrbServer(dev, c2s, s2c);
  server.start();
  const big = (seqnum: number) => encodeToBuffer({ kind: "CMD_SUBMIT", seqnum, devid: DEVID, direction: Direction.IN, ep: 1, transferFlags: 0, transferBufferLength: 16 * 1024 * 1024, startFrame: 0, numberOfPackets: 0, interval: 0, setup: Buffer.alloc(8), payload: [] });
  c2s.write(Buffer.concat(Array.from({ length: 9 }, (_, i) => big(i + 1))));
  const r = await server.done;
  t.is(r.reason, "violation");
  t.is(r.violation?.code, "USBIP_ERR_TOO_MANY_OUTSTANDING");
  t.is(r.violation?.offset, 8 * 48 + 24);
  t.is(dev.pending.size, 8, "the device saw only the URBs within the cap");
});

test("UrbServer: a frontend that stops reading its answers stops being read (input paused above STREAM_BUFFER), then gets them all", async (t) => {
  const dev = new ManualDevice();
  const c2s = new PassThrough();
  const s2c = new PassThrough(); // nobody reads it yet
  const server = new UrbServer(dev, c2s, s2c);
  server.start();
  const N = 40;
  const cmd = (seqnum: number) => encodeToBuffer({ kind: "CMD_SUBMIT", seqnum, devid: DEVID, direction: Direction.IN, ep: 1, transferFlags: 0, transferBufferLength: 65536, startFrame: 0, numberOfPackets: 0, interval: 0, setup: Buffer.alloc(8), payload: [] });
  c2s.write(Buffer.concat(Array.from({ length: N }, (_, i) => cmd(i + 1))));
  await new Promise((r) => setImmediate(r));
  t.is(dev.pending.size, N);
  const data = Buffer.alloc(65536, 0x33);
  for (let s = 1; s <= 8; s++) dev.pending.get(s)!.resolve({ status: 0, data });
  await new Promise((r) => setImmediate(r));
  t.false(c2s.isPaused(), "paused below STREAM_BUFFER");
  for (let s = 9; s <= N; s++) dev.pending.get(s)!.resolve({ status: 0, data });
  await new Promise((r) => setImmediate(r));
  t.true(c2s.isPaused(), "still reading while over STREAM_BUFFER waits");
  t.true(s2c.writableLength > STREAM_BUFFER);
  const got: Buffer[] = [];
  s2c.on("data", (b: Buffer) => got.push(b));
  for (let i = 0; i < 100 && Buffer.concat(got).length < N * (48 + 65536); i++) await new Promise((r) => setImmediate(r));
  t.is(Buffer.concat(got).length, N * (48 + 65536));
  t.false(c2s.isPaused(), "not resumed after the output drained");
  t.is(server.stats.completed, N);
  await server.stop();
});

test("UrbServer: a URB that completes before the cancel takes effect gets its RET_SUBMIT, the unlink 0", async (t) => {
  const dev = new ManualDevice();
  const { host } = wire(dev, false);
  let victim = 0;
  const submitted = host.submit(1, Direction.IN, 4, { onSeqnum: (s) => (victim = s) });
  await new Promise((r) => setImmediate(r));
  const unlinked = host.unlink(victim);
  await new Promise((r) => setImmediate(r));
  dev.pending.get(victim)!.resolve({ status: 0, data: Buffer.from("data") });
  const r = await submitted;
  t.is(r.status, 0);
  t.is(Buffer.concat(r.payload).toString(), "data");
  t.is(await unlinked, 0);
});

test("UrbServer: unlink of an already answered URB: RET_UNLINK 0 at once; a short IN with SHORT_NOT_OK is -EREMOTEIO", async (t) => {
  const dev = new ManualDevice();
  const { host } = wire(dev, false);
  let victim = 0;
  const submitted = host.submit(1, Direction.IN, 8, { flags: TransferFlag.SHORT_NOT_OK, onSeqnum: (s) => (victim = s) });
  await new Promise((r) => setImmediate(r));
  dev.pending.get(victim)!.resolve({ status: 0, data: Buffer.from("abc") });
  const r = await submitted;
  t.is(r.status, Errno.EREMOTEIO);
  t.is(r.actualLength, 3);
  t.is(await host.unlink(victim), 0);
});

test("UrbServer: a CMD_SUBMIT for an endpoint the device lacks ends the session with the rule and offset", async (t) => {
  const dev = new ManualDevice();
  const c2s = new PassThrough();
  const s2c = new PassThrough();
  const server = new UrbServer(dev, c2s, s2c);
  server.start();
  const host = new UsbHost(DEVID, s2c, c2s);
  host.submit(5, Direction.OUT, 0).catch(() => {});
  const r = await server.done;
  t.is(r.reason, "violation");
  t.is(r.violation?.code, "USBIP_ERR_NO_SUCH_ENDPOINT");
  t.is(r.violation?.offset, 16);
});

test("mass-storage model through the relay: enumerates, INQUIRY/READ CAPACITY, reads the image, writes land in it", async (t) => {
  const img = path.join(tmp, "ms.img");
  const content = randomBytes(1 << 20);
  writeFileSync(img, content);
  const dev = await MassStorageDevice.open(img, DEVID);
  const { host, relay } = wire(dev);
  const e = await enumerate(host);
  t.is(e.device.idVendor, 0x1d6b);
  t.is(e.strings[e.device.iProduct], "Virtual Disk");
  t.is(e.configs[0]!.interfaces[0]!.bInterfaceClass, 8);
  const bot = await BotClient.open(host, e);
  t.deepEqual(await bot.readCapacity(), { blocks: 2048, blockSize: 512 });
  t.is((await bot.inquiry()).product, "Virtual Disk");
  t.true((await bot.read(0, 2048)).equals(content));
  const data = randomBytes(64 * 1024);
  await bot.write(100, data);
  t.true((await bot.read(100, 128)).equals(data));
  t.true(readFileSync(img).subarray(100 * 512, 100 * 512 + data.length).equals(data));
  // out of range: the command fails with CHECK CONDITION (and REQUEST SENSE says why)
  await t.throwsAsync(bot.read(2040, 16), { message: /failed \(CSW status 1\)/ });
  const sense = await bot.command(Buffer.from([0x03, 0, 0, 0, 18, 0]), 18);
  t.is(sense[2], 5); // ILLEGAL REQUEST
  t.is(sense[12], 0x21); // LBA out of range
  t.is(relay!.stats.cmdSubmit, relay!.stats.retSubmit);
  await dev.close();
});

test("keyboard model: boot keyboard descriptors, one press and one release report per character", async (t) => {
  const kbd = new HidKeyboard(DEVID, "Hi!\n", 0);
  const { host } = wire(kbd);
  const e = await enumerate(host);
  const i = e.configs[0]!.interfaces[0]!;
  t.deepEqual([i.bInterfaceClass, i.bInterfaceSubClass, i.bInterfaceProtocol], [3, 1, 1]);
  t.is(i.endpoints[0]!.bEndpointAddress, 0x81);
  await host.control({ bmRequestType: 0, bRequest: 9, wValue: 1, wIndex: 0, wLength: 0 });
  const rep = await host.control({ bmRequestType: 0x81, bRequest: 6, wValue: 0x2200, wIndex: 0, wLength: 255 });
  t.is(rep.data.length, 63);
  const got: string[] = [];
  for (let k = 0; k < 8; k++) got.push(Buffer.concat((await host.submit(1, Direction.IN, 8)).payload).toString("hex"));
  t.deepEqual(got, reportsFor("Hi!\n").map((b) => b.toString("hex")));
  t.is(got[0], "02000b0000000000"); // shift + h
  t.throws(() => reportsFor("é"), { message: /cannot type/ });
});

/** one to three class-specific descriptors (CS_INTERFACE 0x24 / CS_ENDPOINT 0x25), each [bLength, type, body] */
const arbClassDescriptors: fc.Arbitrary<Buffer> = fc
  .array(fc.tuple(fc.constantFrom(0x24, 0x25), fc.uint8Array({ maxLength: 12 })), { minLength: 1, maxLength: 3 })
  .map((ds) => Buffer.concat(ds.map(([type, body]) => Buffer.concat([Buffer.from([2 + body.length, type]), Buffer.from(body)]))));

const arbDevice: fc.Arbitrary<DeviceDesc> = fc.record({
  bcdUSB: fc.constantFrom(0x0110, 0x0200),
  bDeviceClass: fc.integer({ min: 0, max: 255 }),
  bDeviceSubClass: fc.integer({ min: 0, max: 255 }),
  bDeviceProtocol: fc.integer({ min: 0, max: 255 }),
  bMaxPacketSize0: fc.constantFrom(8, 16, 32, 64),
  idVendor: fc.integer({ min: 0, max: 0xffff }),
  idProduct: fc.integer({ min: 0, max: 0xffff }),
  bcdDevice: fc.integer({ min: 0, max: 0xffff }),
  product: fc.option(fc.string({ minLength: 1, maxLength: 20 }), { nil: undefined }),
  configs: fc.array(fc.record({
    bConfigurationValue: fc.integer({ min: 1, max: 255 }),
    bmAttributes: fc.constantFrom(0x80, 0xc0, 0xa0),
    bMaxPower: fc.integer({ min: 0, max: 250 }),
    interfaces: fc.array(fc.record({
      bInterfaceNumber: fc.integer({ min: 0, max: 7 }),
      bAlternateSetting: fc.constant(0),
      bInterfaceClass: fc.integer({ min: 0, max: 255 }),
      bInterfaceSubClass: fc.integer({ min: 0, max: 255 }),
      bInterfaceProtocol: fc.integer({ min: 0, max: 255 }),
      extra: fc.option(arbClassDescriptors, { nil: undefined }),
      endpoints: fc.array(fc.record({ bEndpointAddress: fc.integer({ min: 1, max: 0x8f }), bmAttributes: fc.integer({ min: 0, max: 3 }), wMaxPacketSize: fc.integer({ min: 0, max: 1024 }), bInterval: fc.integer({ min: 0, max: 255 }),
        audio: fc.option(fc.record({ bRefresh: fc.integer({ min: 0, max: 255 }), bSynchAddress: fc.integer({ min: 0, max: 255 }) }), { nil: undefined }),
        extra: fc.option(arbClassDescriptors, { nil: undefined }) }), { maxLength: 4 }),
    }), { minLength: 1, maxLength: 3 }),
  }), { minLength: 1, maxLength: 2 }),
});

const sameBytes = (a: Buffer | undefined, b: Buffer | undefined) => (a === undefined || a.length === 0 ? b === undefined || b.length === 0 : b !== undefined && a.equals(b));

test("descriptors: what a model encodes, the host parses back field for field (property)", (t) => {
  fc.assert(fc.property(arbDevice, (d) => {
    const p = parseDeviceDescriptor(encodeDeviceDescriptor(d));
    if (p.idVendor !== d.idVendor || p.idProduct !== d.idProduct || p.bNumConfigurations !== d.configs.length || p.bDeviceClass !== d.bDeviceClass) return false;
    for (const c of d.configs) {
      const pc = parseConfigDescriptor(encodeConfigDescriptor(d, c));
      if (pc.bConfigurationValue !== c.bConfigurationValue || pc.interfaces.length !== c.interfaces.length) return false;
      for (const [k, i] of c.interfaces.entries()) {
        const pi = pc.interfaces[k]!;
        if (pi.bInterfaceClass !== i.bInterfaceClass || pi.bAlternateSetting !== i.bAlternateSetting || !sameBytes(pi.extra, i.extra) || pi.endpoints.length !== i.endpoints.length) return false;
        for (const [n, e] of i.endpoints.entries()) {
          const pe = pi.endpoints[n]!;
          if (pe.bEndpointAddress !== e.bEndpointAddress || pe.bmAttributes !== e.bmAttributes || pe.wMaxPacketSize !== e.wMaxPacketSize || pe.bInterval !== e.bInterval) return false;
          if (JSON.stringify(pe.audio) !== JSON.stringify(e.audio) || !sameBytes(pe.extra, e.extra)) return false;
        }
      }
    }
    return true;
  }), { numRuns: 300 });
  t.pass();
});

test("descriptors: a configuration whose lengths run past wTotalLength is refused with the offset", (t) => {
  const good = encodeConfigDescriptor({ bcdUSB: 0x200, bDeviceClass: 0, bDeviceSubClass: 0, bDeviceProtocol: 0, bMaxPacketSize0: 64, idVendor: 1, idProduct: 1, bcdDevice: 1, configs: [] }, { bConfigurationValue: 1, bmAttributes: 0x80, bMaxPower: 1, interfaces: [{ bInterfaceNumber: 0, bAlternateSetting: 0, bInterfaceClass: 8, bInterfaceSubClass: 6, bInterfaceProtocol: 0x50, endpoints: [{ bEndpointAddress: 0x81, bmAttributes: 2, wMaxPacketSize: 512, bInterval: 0 }] }] });
  const bad = Buffer.from(good);
  bad[9] = 200; // the interface descriptor's bLength
  t.throws(() => parseConfigDescriptor(bad), { message: /descriptor byte 9: bLength 200 runs past wTotalLength/ });
});

test("probe: lsusb -v style text and --json for a virtual keyboard exported by our own CLI", async (t) => {
  const r = await runCli(["probe", "--", process.execPath, "bin/usbip-qrexec.js", "export", "--virtual", "hid-keyboard"]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^Bus 127 Device 001: ID 1d6b:0105 usbip-qrexec Virtual Keyboard$/m);
  t.regex(r.stdout, /bInterfaceClass\s+3 Human Interface Device/);
  t.regex(r.stdout, /bEndpointAddress\s+0x81 EP 1 IN\n.*\n\s+Transfer Type\s+Interrupt/);
  const j = await runCli(["probe", "--json", "--", process.execPath, "bin/usbip-qrexec.js", "export", "--virtual", "hid-keyboard"]);
  const o = JSON.parse(j.stdout) as { speed: string; device: { idProduct: number }; configs: { interfaces: { others: { type: number }[] }[] }[] };
  t.is(o.speed, "12");
  t.is(o.device.idProduct, 0x0105);
  t.is(o.configs[0]!.interfaces[0]!.others[0]!.type, 0x21); // the HID descriptor
});

test("probe: a service that dies before the handshake, and bad usage, are one-line errors", async (t) => {
  const r = await runCli(["probe", "--", "sh", "-c", "exit 3"]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^usbip-qrexec: no device info received/);
  t.is(r.stderr.trim().split("\n").length, 1);
  t.is((await runCli(["probe"])).code, 64);
  t.is((await runCli(["probe", "--timeout", "x", "--", "true"])).code, 64);
});

test("demo: the virtual disk through qrexec-sim and the relay, read and written with checksums", async (t) => {
  const r = await runCli(["demo", "--size", "2", "--chunk", "64"], { timeoutMs: 120_000 });
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /read: +2\.0 MiB .* sha256 matches the image/);
  t.regex(r.stdout, /write: +1\.0 MiB .*read back identical and found in the image file/);
  t.regex(r.stdout, /relay: +(\d+) CMD_SUBMIT and \1 RET_SUBMIT checked, no violation/);
  t.regex(r.stdout, /^demo: ok$/m);
  t.is((await runCli(["demo", "--size", "0"])).code, 64);
});

test("export --virtual: usage errors are one line, exit 64", async (t) => {
  const tiny = path.join(tmp, "tiny.img");
  writeFileSync(tiny, Buffer.alloc(100));
  for (const args of [["export", "--virtual", `mass-storage:${tiny}`], ["export", "--virtual", "toaster"], ["export", "--virtual", "mass-storage"], ["export", "--virtual", "mass-storage:/nonexistent.img"], ["export", "1-1", "--virtual", "hid-keyboard"], ["export", "--virtual", "hid-keyboard:é"], ["export", "--virtual", "mass-storage:/x", "--type-delay", "5"]]) {
    const r = await runCli(args);
    t.is(r.code, 64, args.join(" "));
    t.is(r.stderr.trim().split("\n").length, 1, args.join(" "));
  }
});

test("list's iso marker: an isochronous endpoint in any alternate setting of the raw sysfs descriptors is found", (t) => {
  const dev: DeviceDesc = { bcdUSB: 0x200, bDeviceClass: 0xef, bDeviceSubClass: 2, bDeviceProtocol: 1, bMaxPacketSize0: 64, idVendor: 0x46d, idProduct: 0x825, bcdDevice: 1, configs: [] };
  const cfg = (isoAlt: boolean) => encodeConfigDescriptor(dev, { bConfigurationValue: 1, bmAttributes: 0x80, bMaxPower: 250, interfaces: [
    { bInterfaceNumber: 0, bAlternateSetting: 0, bInterfaceClass: 14, bInterfaceSubClass: 1, bInterfaceProtocol: 0, endpoints: [{ bEndpointAddress: 0x83, bmAttributes: 3, wMaxPacketSize: 16, bInterval: 8 }] },
    { bInterfaceNumber: 1, bAlternateSetting: 0, bInterfaceClass: 14, bInterfaceSubClass: 2, bInterfaceProtocol: 0, endpoints: [] },
    { bInterfaceNumber: 1, bAlternateSetting: 1, bInterfaceClass: 14, bInterfaceSubClass: 2, bInterfaceProtocol: 0, endpoints: [{ bEndpointAddress: 0x81, bmAttributes: isoAlt ? 5 : 2, wMaxPacketSize: 1024, bInterval: 1 }] },
  ] });
  const raw = (iso: boolean) => Buffer.concat([encodeDeviceDescriptor({ ...dev, configs: [{ bConfigurationValue: 1, bmAttributes: 0x80, bMaxPower: 1, interfaces: [] }] }), cfg(iso)]);
  t.true(hasIsochronous(raw(true)));
  t.false(hasIsochronous(raw(false)));
  t.false(hasIsochronous(undefined));
  t.false(hasIsochronous(raw(true).subarray(0, 18)));
});

for (const viaCallback of [false, true])
test(`UrbServer: answers on one endpoint keep submission order even when the device completes out of order (results ${viaCallback ? "told through listen()" : "as promises"})`, async (t) => {
  const dev = new ManualDevice(false, viaCallback);
  const { host } = wire(dev, false);
  const seqs: number[] = [];
  const order: number[] = [];
  const a = host.submit(1, Direction.IN, 4, { onSeqnum: (s) => seqs.push(s) }).then((r) => order.push(r.seqnum));
  const b = host.submit(1, Direction.IN, 4, { onSeqnum: (s) => seqs.push(s) }).then((r) => order.push(r.seqnum));
  await new Promise((r) => setImmediate(r));
  dev.pending.get(seqs[1]!)!.resolve({ status: 0, data: Buffer.from("b") });
  await new Promise((r) => setTimeout(r, 20));
  t.deepEqual(order, [], "the second URB's answer waits for the first");
  dev.pending.get(seqs[0]!)!.resolve({ status: 0, data: Buffer.from("a") });
  await Promise.all([a, b]);
  t.deepEqual(order, seqs);
});

test("UrbServer: control requests in both directions on ep 0 are answered in submission order", async (t) => {
  const dev = new ManualDevice();
  const { host } = wire(dev, false);
  const seqs: number[] = [];
  const order: number[] = [];
  const a = host.control({ bmRequestType: 0x80, bRequest: 6, wValue: 0x100, wIndex: 0, wLength: 18 }).then(() => order.push(1));
  const b = host.control({ bmRequestType: 0x02, bRequest: 1, wValue: 0, wIndex: 0, wLength: 0 }).then(() => order.push(2)); // CLEAR_FEATURE(HALT), OUT
  await new Promise((r) => setImmediate(r));
  for (const s of dev.pending.keys()) seqs.push(s);
  dev.pending.get(seqs[1]!)!.resolve({ status: Errno.EPIPE });
  await new Promise((r) => setTimeout(r, 20));
  t.deepEqual(order, []);
  dev.pending.get(seqs[0]!)!.resolve({ status: 0, data: Buffer.alloc(18) });
  await Promise.all([a, b]);
  t.deepEqual(order, [1, 2]);
});

test("keyboard model: an interrupt IN URB waiting for a keystroke is cancelled by CMD_UNLINK (-ECONNRESET, no RET_SUBMIT)", async (t) => {
  const kbd = new HidKeyboard(DEVID, "x", 60_000);
  const { host } = wire(kbd);
  await host.control({ bmRequestType: 0, bRequest: 9, wValue: 1, wIndex: 0, wLength: 0 });
  let victim = 0;
  const waiting = host.submit(1, Direction.IN, 8, { onSeqnum: (s) => (victim = s) });
  await new Promise((r) => setTimeout(r, 20));
  t.is(await host.unlink(victim), Errno.ECONNRESET);
  t.is((await waiting).status, Errno.ECONNRESET);
  t.is(kbd.typed, 0);
  await kbd.close();
});

test("callbackHandle: a result told before or after listen() reaches the listener once, synchronously; `result` settles with it whenever it is asked for", async (t) => {
  let settle!: (r: UrbResult) => void;
  let cancels = 0;
  const h = callbackHandle((s) => ((settle = s), { cancel: () => cancels++ }));
  const heard: UrbResult[] = [];
  h.listen!((r) => heard.push(r));
  settle({ status: 0, actualLength: 3 });
  t.deepEqual(heard, [{ status: 0, actualLength: 3 }], "heard in the same turn");
  t.deepEqual(await h.result, { status: 0, actualLength: 3 }, "the promise made after the fact has it");
  h.cancel();
  t.is(cancels, 1);
  // settled at once, inside start (a refused submit): a later listener hears it at once
  const early = callbackHandle((s) => (s({ status: Errno.EPIPE }), { cancel() {} }));
  const got: number[] = [];
  early.listen!((r) => got.push(r.status));
  t.deepEqual(got, [Errno.EPIPE]);
  // asked for the promise first, settled later
  let later!: (r: UrbResult) => void;
  const h2 = callbackHandle((s) => ((later = s), { cancel() {} }));
  const p = h2.result;
  later({ status: Errno.ENODEV });
  t.is((await p).status, Errno.ENODEV);
});
