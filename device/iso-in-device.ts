/**
 * A device model whose interface 1 streams isochronous IN on one endpoint (the UAC1 microphone,
 * the UVC camera): alternate setting 1 starts a new paced stream (device/iso-in-stream.ts),
 * any other setting ends it — URBs still queued then end as on an HCD; iso URBs on the
 * endpoint go to the stream, anything else stalls.
 */
import type { CmdSubmit } from "../protocol/messages.js";
import type { SpeedString } from "../protocol/speed.js";
import { IsoInStream, type Clock, type IsoFill } from "./iso-in-stream.js";
import type { UrbHandle } from "./urb-device.js";
import type { DeviceDesc } from "../usb/descriptors.js";
import { STALL, VirtualDevice } from "./virtual-device.js";

/** The streaming interface (interface 0 is the class's control interface). */
const STREAMING_INTERFACE = 1;

export abstract class IsoInDevice extends VirtualDevice {
  private stream: IsoInStream;
  /** times the streaming interface went to alternate setting 1 (stream starts) */
  starts = 0;

  constructor(
    name: string,
    devid: number,
    speed: SpeedString,
    desc: DeviceDesc,
    private readonly endpointAddress: number,
    private readonly intervalMs: number,
    private readonly fill: IsoFill,
    private readonly clock: Clock,
  ) {
    super(name, devid, speed, desc);
    this.stream = new IsoInStream(intervalMs, fill, clock);
  }

  get stats() {
    return this.stream.stats;
  }

  /** iso URBs waiting for their service intervals */
  get queued(): number {
    return this.stream.queued;
  }

  override async close(): Promise<void> {
    this.stream.stop();
  }

  protected override alternateSet(ifnum: number, alt: number): void {
    if (ifnum !== STREAMING_INTERFACE) return;
    if (alt === 1) this.starts++;
    // a new stream starts its own interval count
    this.stream.stop();
    this.stream = new IsoInStream(this.intervalMs, this.fill, this.clock);
  }

  protected transfer(address: number, cmd: CmdSubmit): UrbHandle {
    if (address !== this.endpointAddress || cmd.isoPackets === undefined) return { result: Promise.resolve(STALL), cancel() {} };
    return this.stream.submit(cmd);
  }
}
