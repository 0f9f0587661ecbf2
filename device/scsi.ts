/**
 * The SCSI subset Linux's sd driver needs from a USB disk (SPC/SBC): INQUIRY, TEST UNIT READY,
 * READ CAPACITY(10), READ(10), WRITE(10), MODE SENSE(6), REQUEST SENSE, PREVENT/ALLOW MEDIUM
 * REMOVAL, SYNCHRONIZE CACHE(10). Anything else: CHECK CONDITION, ILLEGAL REQUEST / INVALID
 * COMMAND OPERATION CODE (sd then falls back, as with many cheap sticks). Block size 512.
 */
import type { FileHandle } from "node:fs/promises";

export const BLOCK = 512;
export const Op = { TEST_UNIT_READY: 0x00, REQUEST_SENSE: 0x03, INQUIRY: 0x12, MODE_SENSE_6: 0x1a, PREVENT_ALLOW: 0x1e, READ_CAPACITY_10: 0x25, READ_10: 0x28, WRITE_10: 0x2a, SYNCHRONIZE_CACHE_10: 0x35 } as const;
export const SenseKey = { NO_SENSE: 0, NOT_READY: 2, MEDIUM_ERROR: 3, ILLEGAL_REQUEST: 5 } as const;

export interface ScsiOutcome {
  /** true: GOOD, false: CHECK CONDITION (sense data set) */
  good: boolean;
  /** data-in phase bytes */
  dataIn?: Buffer;
}

/** A data-out command waiting for its data (WRITE(10)). */
export interface ScsiDataOut {
  length: number;
  complete(data: Buffer): Promise<ScsiOutcome>;
}

export class ScsiDisk {
  private sense = { key: 0, asc: 0, ascq: 0 };
  readonly blocks: number;

  constructor(private readonly file: FileHandle, sizeBytes: number, private readonly readOnly = false) {
    this.blocks = Math.floor(sizeBytes / BLOCK);
  }

  private fail(key: number, asc: number, ascq = 0): ScsiOutcome {
    this.sense = { key, asc, ascq };
    return { good: false };
  }
  private ok(dataIn?: Buffer): ScsiOutcome {
    this.sense = { key: 0, asc: 0, ascq: 0 };
    return dataIn === undefined ? { good: true } : { good: true, dataIn };
  }

  /** Run a command block; a data-out command returns what it waits for. */
  async command(cb: Buffer): Promise<ScsiOutcome | ScsiDataOut> {
    switch (cb[0]) {
      case Op.TEST_UNIT_READY:
      case Op.PREVENT_ALLOW:
        return this.ok();
      case Op.SYNCHRONIZE_CACHE_10:
        await this.file.sync();
        return this.ok();
      case Op.INQUIRY: {
        if ((cb[1]! & 1) !== 0) return this.fail(SenseKey.ILLEGAL_REQUEST, 0x24); // EVPD: no VPD pages
        const d = Buffer.alloc(36, 0x20);
        d[0] = 0x00; // direct-access block device
        d[1] = 0x00; // not removable
        d[2] = 0x04; // SPC-2
        d[3] = 0x02; // response data format 2
        d[4] = 31; // additional length
        d[5] = d[6] = d[7] = 0;
        d.write("usbip-q ", 8, "latin1");
        d.write("Virtual Disk", 16, "latin1");
        d.write("0.1 ", 32, "latin1");
        return this.ok(d.subarray(0, Math.min(36, cb.readUInt16BE(3) || 36)));
      }
      case Op.REQUEST_SENSE: {
        const d = Buffer.alloc(18);
        d[0] = 0x70; // current error, fixed format
        d[2] = this.sense.key;
        d[7] = 10;
        d[12] = this.sense.asc;
        d[13] = this.sense.ascq;
        this.sense = { key: 0, asc: 0, ascq: 0 };
        return { good: true, dataIn: d.subarray(0, Math.min(18, cb[4]!)) };
      }
      case Op.MODE_SENSE_6: {
        // header only: mode data length 3, medium type 0, WP bit, no block descriptors
        const d = Buffer.from([3, 0, this.readOnly ? 0x80 : 0, 0]);
        return this.ok(d.subarray(0, Math.min(4, cb[4]!)));
      }
      case Op.READ_CAPACITY_10: {
        const d = Buffer.alloc(8);
        d.writeUInt32BE(this.blocks - 1, 0);
        d.writeUInt32BE(BLOCK, 4);
        return this.ok(d);
      }
      case Op.READ_10: {
        const lba = cb.readUInt32BE(2);
        const count = cb.readUInt16BE(7);
        if (lba + count > this.blocks) return this.fail(SenseKey.ILLEGAL_REQUEST, 0x21); // LBA out of range
        const d = Buffer.allocUnsafe(count * BLOCK);
        const { bytesRead } = await this.file.read(d, 0, d.length, lba * BLOCK);
        if (bytesRead !== d.length) return this.fail(SenseKey.MEDIUM_ERROR, 0x11); // unrecovered read error
        return this.ok(d);
      }
      case Op.WRITE_10: {
        const lba = cb.readUInt32BE(2);
        const count = cb.readUInt16BE(7);
        if (this.readOnly) return this.fail(7, 0x27); // DATA PROTECT: WRITE PROTECTED
        if (lba + count > this.blocks) return this.fail(SenseKey.ILLEGAL_REQUEST, 0x21);
        return {
          length: count * BLOCK,
          complete: async (data) => {
            const { bytesWritten } = await this.file.write(data, 0, count * BLOCK, lba * BLOCK);
            return bytesWritten === count * BLOCK ? this.ok() : this.fail(SenseKey.MEDIUM_ERROR, 0x0c); // write error
          },
        };
      }
      default:
        return this.fail(SenseKey.ILLEGAL_REQUEST, 0x20); // invalid command operation code
    }
  }
}
