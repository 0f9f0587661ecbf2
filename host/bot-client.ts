/**
 * A mass-storage (Bulk-Only Transport) client over the userspace host: CBW, data phase (as
 * several URBs in flight, like Linux's usb-storage with scatter-gather), CSW; and the SCSI
 * commands the demo needs. Every CSW is checked (signature, tag, status, residue).
 */
import { Direction, statusName, TransferFlag, Errno } from "../protocol/constants.js";
import { UsbipError, RuntimeCode } from "../protocol/errors.js";
import { Request } from "../usb/setup.js";
import type { Enumerated } from "./enumerate.js";
import type { UsbHost } from "./usb-host.js";

const URB_SIZE = 64 * 1024;

export class BotClient {
  private tag = 0;
  private constructor(private readonly host: UsbHost, private readonly epIn: number, private readonly epOut: number) {}

  /** Configure the device and find its bulk-only interface. */
  static async open(host: UsbHost, e: Enumerated): Promise<BotClient> {
    for (const c of e.configs) {
      const i = c.interfaces.find((x) => x.bInterfaceClass === 8 && x.bInterfaceProtocol === 0x50);
      if (i === undefined) continue;
      const epIn = i.endpoints.find((x) => (x.bmAttributes & 3) === 2 && x.bEndpointAddress & 0x80);
      const epOut = i.endpoints.find((x) => (x.bmAttributes & 3) === 2 && !(x.bEndpointAddress & 0x80));
      if (!epIn || !epOut) continue;
      const r = await host.control({ bmRequestType: 0x00, bRequest: Request.SET_CONFIGURATION, wValue: c.bConfigurationValue, wIndex: 0, wLength: 0 });
      if (r.status !== 0) throw new UsbipError(RuntimeCode.DEVICE, `SET_CONFIGURATION ${c.bConfigurationValue} failed: ${statusName(r.status)}`);
      return new BotClient(host, epIn.bEndpointAddress & 0x0f, epOut.bEndpointAddress & 0x0f);
    }
    throw new UsbipError(RuntimeCode.DEVICE, "not a bulk-only mass-storage device");
  }

  /** One command: returns the data-in bytes; throws on a failed CSW. */
  async command(cb: Buffer, dataInLength: number, dataOut?: Buffer): Promise<Buffer> {
    const tag = (this.tag = (this.tag + 1) >>> 0);
    const len = dataOut ? dataOut.length : dataInLength;
    const cbw = Buffer.alloc(31);
    cbw.writeUInt32LE(0x43425355, 0);
    cbw.writeUInt32LE(tag, 4);
    cbw.writeUInt32LE(len, 8);
    cbw[12] = dataOut ? 0 : 0x80;
    cbw[14] = cb.length;
    cb.copy(cbw, 15);
    const w = await this.host.submit(this.epOut, Direction.OUT, 31, { out: cbw });
    if (w.status !== 0) throw new UsbipError(RuntimeCode.DEVICE, `CBW: ${statusName(w.status)}`);
    const parts: Promise<Buffer>[] = [];
    for (let off = 0; off < len; off += URB_SIZE) {
      const n = Math.min(URB_SIZE, len - off);
      if (dataOut) parts.push(this.host.submit(this.epOut, Direction.OUT, n, { out: dataOut.subarray(off, off + n) }).then((r) => (r.status === 0 ? Buffer.alloc(0) : Promise.reject(new UsbipError(RuntimeCode.DEVICE, `data out: ${statusName(r.status)}`)))));
      else parts.push(this.host.submit(this.epIn, Direction.IN, n, { flags: TransferFlag.SHORT_NOT_OK }).then((r) => (r.status === 0 || r.status === Errno.EREMOTEIO ? Buffer.concat(r.payload) : Promise.reject(new UsbipError(RuntimeCode.DEVICE, `data in: ${statusName(r.status)}`)))));
    }
    const data = Buffer.concat(await Promise.all(parts));
    const c = await this.host.submit(this.epIn, Direction.IN, 13);
    const csw = Buffer.concat(c.payload);
    if (c.status !== 0 || csw.length !== 13 || csw.readUInt32LE(0) !== 0x53425355 || csw.readUInt32LE(4) !== tag) throw new UsbipError(RuntimeCode.DEVICE, `bad CSW (status ${statusName(c.status)}, ${csw.length} bytes)`);
    if (csw[12] !== 0) throw new UsbipError(RuntimeCode.DEVICE, `SCSI command 0x${cb[0]!.toString(16)} failed (CSW status ${csw[12]})`);
    return data;
  }

  async readCapacity(): Promise<{ blocks: number; blockSize: number }> {
    const d = await this.command(Buffer.from([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 8);
    return { blocks: d.readUInt32BE(0) + 1, blockSize: d.readUInt32BE(4) };
  }

  async inquiry(): Promise<{ vendor: string; product: string }> {
    const d = await this.command(Buffer.from([0x12, 0, 0, 0, 36, 0]), 36);
    return { vendor: d.toString("latin1", 8, 16).trim(), product: d.toString("latin1", 16, 32).trim() };
  }

  async read(lba: number, blocks: number, blockSize = 512): Promise<Buffer> {
    const cb = Buffer.alloc(10);
    cb[0] = 0x28;
    cb.writeUInt32BE(lba, 2);
    cb.writeUInt16BE(blocks, 7);
    return this.command(cb, blocks * blockSize);
  }

  async write(lba: number, data: Buffer, blockSize = 512): Promise<void> {
    const cb = Buffer.alloc(10);
    cb[0] = 0x2a;
    cb.writeUInt32BE(lba, 2);
    cb.writeUInt16BE(data.length / blockSize, 7);
    await this.command(cb, 0, data);
  }
}
