/**
 * A source/sink device model like the kernel's gadget zero (0525:a4a0 "SourceSink"): bulk IN
 * 0x81 is a source of the "mod63" pattern (byte i of every transfer is i % 63, usbtest's
 * pattern=1), bulk OUT 0x02 is a sink that checks the same pattern. Each transfer completes
 * after a short, varying latency (the same event-loop turn's end, or 1-3 ms) so that URBs are
 * really in flight and an unlink can catch them: what the soak (bench/soak.ts) needs.
 */
import { Errno } from "../protocol/constants.js";
import type { CmdSubmit } from "../protocol/messages.js";
import type { UrbHandle, UrbResult } from "./urb-device.js";
import { STALL, VirtualDevice } from "./virtual-device.js";

/** The mod63 pattern for `length` bytes. */
export function mod63(length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = i % 63;
  return b;
}

export interface SourceSinkStats {
  inTransfers: number;
  outTransfers: number;
  cancelled: number;
  /** OUT transfers whose data was not the mod63 pattern */
  corrupt: number;
}

export class SourceSink extends VirtualDevice {
  readonly stats: SourceSinkStats = { inTransfers: 0, outTransfers: 0, cancelled: 0, corrupt: 0 };
  private pattern = mod63(0);
  private n = 0;
  private readonly live = new Set<() => void>();

  constructor(devid: number, name = "vsourcesink") {
    super(name, devid, "480", {
      bcdUSB: 0x0200,
      bDeviceClass: 0xff,
      bDeviceSubClass: 0,
      bDeviceProtocol: 0,
      bMaxPacketSize0: 64,
      idVendor: 0x0525,
      idProduct: 0xa4a0,
      bcdDevice: 0x0100,
      manufacturer: "usbip-qrexec",
      product: "Virtual SourceSink",
      configs: [{ bConfigurationValue: 1, bmAttributes: 0x80, bMaxPower: 50, interfaces: [{ bInterfaceNumber: 0, bAlternateSetting: 0, bInterfaceClass: 0xff, bInterfaceSubClass: 0, bInterfaceProtocol: 0, extra: Buffer.alloc(0),
        endpoints: [{ bEndpointAddress: 0x81, bmAttributes: 2, wMaxPacketSize: 512, bInterval: 0 }, { bEndpointAddress: 0x02, bmAttributes: 2, wMaxPacketSize: 512, bInterval: 0 }] }] }],
    });
  }

  override async close(): Promise<void> {
    for (const end of [...this.live]) end();
  }

  protected transfer(address: number, cmd: CmdSubmit, out: Buffer): UrbHandle {
    if (address !== 0x81 && address !== 0x02) return { result: Promise.resolve(STALL), cancel() {} };
    let finish!: (r: UrbResult) => void;
    const result = new Promise<UrbResult>((r) => (finish = r));
    const complete = () => {
      this.live.delete(cancelNow);
      if (address === 0x81) {
        this.stats.inTransfers++;
        finish({ status: 0, data: this.patternOf(cmd.transferBufferLength) });
      } else {
        this.stats.outTransfers++;
        if (!out.equals(this.patternOf(out.length))) this.stats.corrupt++;
        finish({ status: 0, actualLength: out.length });
      }
    };
    // every 4th transfer waits 1-3 ms, the others complete at the end of this turn
    const k = this.n++ % 4;
    const timer = k === 0 ? setTimeout(complete, 1 + (this.n % 3)) : undefined;
    const immediate = k !== 0 ? setImmediate(complete) : undefined;
    const cancelNow = () => {
      if (!this.live.delete(cancelNow)) return;
      clearTimeout(timer);
      clearImmediate(immediate);
      this.stats.cancelled++;
      finish({ status: Errno.ECONNRESET, cancelled: true });
    };
    this.live.add(cancelNow);
    return { result, cancel: cancelNow };
  }

  private patternOf(length: number): Buffer {
    if (this.pattern.length < length) this.pattern = mod63(Math.max(length, 2 * this.pattern.length));
    return this.pattern.subarray(0, length);
  }
}
