/**
 * A USB mass-storage device model (Bulk-Only Transport, SCSI transparent command set) on an
 * image file: `export --virtual mass-storage:FILE`. BOT (usbmassbulk_10): a 31-byte CBW on
 * bulk OUT, an optional data phase, a 13-byte CSW on bulk IN. Linux's usb-storage submits the
 * data phase as several URBs at once (scatter-gather) with URB_SHORT_NOT_OK, so a data-in
 * phase shorter than the host asked for ends with a short URB (the server turns that into
 * -EREMOTEIO) and the CSW's dCSWDataResidue says how much was missing.
 */
import { open, type FileHandle } from "node:fs/promises";
import { Errno } from "../protocol/constants.js";
import { UsageError } from "../protocol/errors.js";
import type { CmdSubmit } from "../protocol/messages.js";
import { RequestType, recipient, requestType, Recipient, type Setup } from "../usb/setup.js";
import { ScsiDisk, type ScsiDataOut, type ScsiOutcome } from "./scsi.js";
import type { UrbHandle, UrbResult } from "./urb-device.js";
import { STALL, VirtualDevice } from "./virtual-device.js";
import { PendingUrbs } from "./pending-urbs.js";

const CBW_SIGNATURE = 0x43425355; // "USBC" little-endian
const CSW_SIGNATURE = 0x53425355; // "USBS"
const CBW_SIZE = 31;
const EP_IN = 0x81;
const EP_OUT = 0x02;
const GET_MAX_LUN = 0xfe;
const BOT_RESET = 0xff;

type Phase =
  | { p: "cbw" }
  | { p: "busy"; tag: number; expected: number } // a command is running
  | { p: "data-in"; tag: number; expected: number; data: Buffer; sent: number; good: boolean }
  | { p: "data-out"; tag: number; expected: number; want: ScsiDataOut; got: Buffer[]; n: number }
  | { p: "csw"; tag: number; residue: number; status: number };

export class MassStorageDevice extends VirtualDevice {
  private phase: Phase = { p: "cbw" };
  private readonly pendingIn = new PendingUrbs<CmdSubmit>();
  /** bytes moved through READ(10)/WRITE(10) etc. (for the demo's statistics) */
  readonly counters = { commands: 0, read: 0, written: 0 };

  private constructor(name: string, devid: number, private readonly file: FileHandle, private readonly disk: ScsiDisk) {
    super(name, devid, "480", {
      bcdUSB: 0x0200,
      bDeviceClass: 0,
      bDeviceSubClass: 0,
      bDeviceProtocol: 0,
      bMaxPacketSize0: 64,
      idVendor: 0x1d6b, // Linux Foundation
      idProduct: 0x0104, // Multifunction Composite Gadget (as the kernel's own gadgets)
      bcdDevice: 0x0100,
      manufacturer: "usbip-qrexec",
      product: "Virtual Disk",
      serial: "USBIPQ0001",
      configs: [{ bConfigurationValue: 1, bmAttributes: 0x80, bMaxPower: 50, interfaces: [{ bInterfaceNumber: 0, bAlternateSetting: 0, bInterfaceClass: 8, bInterfaceSubClass: 6, bInterfaceProtocol: 0x50, endpoints: [
        { bEndpointAddress: EP_IN, bmAttributes: 2, wMaxPacketSize: 512, bInterval: 0 },
        { bEndpointAddress: EP_OUT, bmAttributes: 2, wMaxPacketSize: 512, bInterval: 0 },
      ] }] }],
    });
  }

  static async open(image: string, devid: number, name = "vdisk"): Promise<MassStorageDevice> {
    const file = await open(image, "r+");
    const size = (await file.stat()).size;
    if (size < 512) {
      await file.close();
      throw new UsageError(`mass-storage image ${image} is ${size} bytes; at least one 512-byte block is needed`);
    }
    return new MassStorageDevice(name, devid, file, new ScsiDisk(file, size));
  }

  get blocks(): number {
    return this.disk.blocks;
  }

  override async close(): Promise<void> {
    this.pendingIn.failAll(Errno.ESHUTDOWN);
    await this.file.close().catch(() => {});
  }

  protected override classRequest(s: Setup): UrbResult | undefined {
    if (requestType(s) !== RequestType.CLASS || recipient(s) !== Recipient.INTERFACE || s.wIndex !== 0) return undefined;
    if (s.bRequest === GET_MAX_LUN) return { status: 0, data: Buffer.from([0]) };
    if (s.bRequest === BOT_RESET) {
      this.phase = { p: "cbw" };
      return { status: 0 };
    }
    return undefined;
  }

  protected override configured(): void {
    this.phase = { p: "cbw" };
  }

  protected transfer(address: number, cmd: CmdSubmit, out: Buffer): UrbHandle {
    if (address === EP_OUT) return { result: this.bulkOut(out), cancel() {} };
    if (address !== EP_IN) return { result: Promise.resolve(STALL), cancel() {} };
    return this.pendingIn.add(cmd, () => this.serveIn());
  }

  private async bulkOut(out: Buffer): Promise<UrbResult> {
    const ph = this.phase;
    if (ph.p === "data-out") {
      const take = out.subarray(0, ph.expected - ph.n);
      ph.got.push(Buffer.from(take));
      ph.n += take.length;
      if (ph.n >= ph.want.length || ph.n >= ph.expected) {
        const data = Buffer.concat(ph.got);
        this.phase = { p: "busy", tag: ph.tag, expected: ph.expected };
        const o = data.length >= ph.want.length ? await ph.want.complete(data.subarray(0, ph.want.length)) : { good: false };
        if (o.good) this.counters.written += ph.want.length;
        this.phase = { p: "csw", tag: ph.tag, residue: ph.expected - ph.n, status: o.good ? 0 : 1 };
        this.serveIn();
      }
      return { status: 0, actualLength: out.length };
    }
    if (ph.p !== "cbw" || out.length !== CBW_SIZE || out.readUInt32LE(0) !== CBW_SIGNATURE) return STALL; // not a valid CBW (BOT 6.6.1)
    const tag = out.readUInt32LE(4);
    const expected = out.readUInt32LE(8);
    const dataIn = (out[12]! & 0x80) !== 0;
    const cbLen = out[14]! & 0x1f;
    const cb = Buffer.from(out.subarray(15, 15 + Math.max(1, Math.min(16, cbLen))));
    this.counters.commands++;
    this.phase = { p: "busy", tag, expected };
    void this.run(tag, expected, dataIn, cb);
    return { status: 0, actualLength: CBW_SIZE };
  }

  private async run(tag: number, expected: number, dataIn: boolean, cb: Buffer): Promise<void> {
    let o: ScsiOutcome | ScsiDataOut;
    try {
      o = await this.disk.command(cb);
    } catch {
      o = { good: false };
    }
    if (this.phase.p !== "busy" || this.phase.tag !== tag) return; // reset meanwhile
    if ("complete" in o) {
      if (dataIn || expected === 0) this.phase = { p: "csw", tag, residue: expected, status: 2 }; // phase error (BOT 6.7)
      else this.phase = { p: "data-out", tag, expected, want: o, got: [], n: 0 };
    } else if (expected > 0 && dataIn) {
      const data = (o.dataIn ?? Buffer.alloc(0)).subarray(0, expected);
      if (o.good && cb[0] === 0x28) this.counters.read += data.length;
      this.phase = { p: "data-in", tag, expected, data, sent: 0, good: o.good };
    } else this.phase = { p: "csw", tag, residue: expected, status: o.good ? 0 : 1 };
    this.serveIn();
  }

  /** Complete pending bulk IN URBs as far as the phase allows. */
  private serveIn(): void {
    while (this.pendingIn.length > 0) {
      const ph = this.phase;
      if (ph.p === "data-in") {
        const cmd = this.pendingIn.peek()!;
        const chunk = ph.data.subarray(ph.sent, ph.sent + cmd.transferBufferLength);
        ph.sent += chunk.length;
        // all data sent, or this URB came back short: the data phase is over
        if (ph.sent >= ph.data.length) this.phase = { p: "csw", tag: ph.tag, residue: ph.expected - ph.sent, status: ph.good ? 0 : 1 };
        this.pendingIn.answer({ status: 0, data: chunk });
      } else if (ph.p === "csw") {
        const csw = Buffer.alloc(13);
        csw.writeUInt32LE(CSW_SIGNATURE, 0);
        csw.writeUInt32LE(ph.tag, 4);
        csw.writeUInt32LE(ph.residue, 8);
        csw[12] = ph.status;
        this.phase = { p: "cbw" };
        this.pendingIn.answer({ status: 0, data: csw });
      } else return;
    }
  }
}
