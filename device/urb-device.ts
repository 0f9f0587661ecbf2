/**
 * What a backend serves URBs from, whatever it is: a device model in TypeScript (virtual), or a
 * real device through libusb (userspace mode). The server (device/urb-server.ts) owns the wire;
 * a device only executes transfers.
 */
import type { Direction } from "../protocol/constants.js";
import type { EndpointType } from "../protocol/client-decoder.js";
import type { CmdSubmit, DeviceRecord, InterfaceRecord } from "../protocol/messages.js";
import type { SpeedString } from "../protocol/speed.js";
import type { FdWatch } from "../shared/fd-loop.js";

export interface UrbResult {
  /** 0 or a negative Linux errno (-EPIPE for a stall, …) */
  status: number;
  /** IN: the bytes received (their length is actual_length) */
  data?: Buffer;
  /** OUT: bytes accepted; defaults to transfer_buffer_length when status is 0 */
  actualLength?: number;
  /** true when the transfer ended because cancel() was called (it will be answered by RET_UNLINK) */
  cancelled?: boolean;
  /**
   * Iso URBs: one entry per submitted packet, in order: its actual_length and status (offset and
   * length as submitted). IN data then lies at each packet's offset in `data` (the URB's buffer
   * as an HCD fills it); the server packs it for the wire.
   */
  isoPackets?: { actualLength: number; status: number }[];
  /** Iso URBs: the (micro)frame the first packet went out in */
  startFrame?: number;
}

export interface UrbHandle {
  readonly result: Promise<UrbResult>;
  /** Ask for cancellation; `result` then settles, with `cancelled` set if it took effect. */
  cancel(): void;
  /**
   * Hear the result synchronously, when the device has it (at once if it has), instead of through
   * `result`'s promise: a device whose completions come from a poll() loop (usbfs) answers in
   * the same turn, with no promise per URB. Optional; the caller then leaves `result` alone.
   */
  listen?(cb: (r: UrbResult) => void): void;
}

export interface UrbDevice {
  /** busnum << 16 | devnum as the frontend will address it */
  readonly devid: number;
  readonly speed: SpeedString;
  /** the record usbipd sends for this device (OP_REP_DEVLIST / OP_REP_IMPORT) */
  record(): DeviceRecord & { interfaces: InterfaceRecord[] };
  /** type of endpoint `ep` in `direction` in the current configuration, if it exists */
  endpoint(ep: number, direction: Direction): EndpointType | undefined;
  /** an iso endpoint's bytes per service interval, when the device knows it (relay-rules' isoPacketLimit) */
  isoPacketLimit?(ep: number, direction: Direction): number | undefined;
  /** Start one transfer; `out` is the OUT payload (empty for IN). Never throws: errors are statuses. */
  submit(cmd: CmdSubmit, out: Buffer): UrbHandle;
  /**
   * A device whose completions are signalled on an fd (usbfs) lets the caller's poll() loop watch
   * it (shared/fd-loop.ts): the link's bytes and the URBs then move in one loop. Returns whether it did.
   */
  pollBy?(loop: { watch(w: FdWatch): void }): boolean;
  /** Release the device (interfaces, kernel drivers); idempotent. */
  close(): Promise<void>;
}

/**
 * A handle settled by a call to settle(): listen() hears the result synchronously; `result` is
 * made only when someone asks for it. An object with methods, not a set of closures: one is
 * made per URB on the userspace backend's hot path.
 */
export class SettleableHandle implements UrbHandle {
  private got: UrbResult | undefined;
  private listener: ((r: UrbResult) => void) | undefined;
  private resolve: ((r: UrbResult) => void) | undefined;
  private promise: Promise<UrbResult> | undefined;
  /** what cancel() asks (set by whoever started the transfer) */
  canceller: { cancel(): void } | undefined;

  get result(): Promise<UrbResult> {
    return (this.promise ??= this.got !== undefined ? Promise.resolve(this.got) : new Promise<UrbResult>((res) => (this.resolve = res)));
  }

  cancel(): void {
    this.canceller?.cancel();
  }

  listen(cb: (r: UrbResult) => void): void {
    if (this.got !== undefined) cb(this.got);
    else this.listener = cb;
  }

  settle(r: UrbResult): void {
    this.got = r;
    this.listener?.(r);
    this.resolve?.(r);
  }
}

/**
 * A handle for a transfer that reports its result through a callback (`start` gets the function
 * to call, and may call it at once).
 */
export function callbackHandle(start: (settle: (r: UrbResult) => void) => { cancel(): void }): UrbHandle {
  const h = new SettleableHandle();
  h.canceller = start((r) => h.settle(r));
  return h;
}

/** A handle whose result is already known (heard at once by listen()). */
export function settled(r: UrbResult): UrbHandle {
  return callbackHandle((settle) => {
    settle(r);
    return { cancel() {} };
  });
}
