/**
 * A USB HID boot keyboard model (HID 1.11, boot protocol, 8-byte reports on interrupt IN 0x81):
 * `export --virtual hid-keyboard[:TEXT]` types TEXT, starting `delayMs` after the host first
 * polls it (Linux's usbhid polls as soon as an input handler opens it, e.g. the VT keyboard,
 * so the delay gives readers of /dev/input/event* time to open), one press and one release
 * report per character. Interrupt IN URBs wait until there is a report (a keyboard NAKs).
 */
import { Errno } from "../protocol/constants.js";
import { UsageError } from "../protocol/errors.js";
import type { CmdSubmit } from "../protocol/messages.js";
import { DescType } from "../usb/descriptors.js";
import { Recipient, RequestType, recipient, requestType, Request, type Setup } from "../usb/setup.js";
import type { UrbHandle, UrbResult } from "./urb-device.js";
import { modelDescriptor, STALL, VirtualDevice } from "./virtual-device.js";
import { PendingUrbs } from "./pending-urbs.js";

/** The boot keyboard report descriptor of HID 1.11 Appendix B.1 (63 bytes). */
export const BOOT_KEYBOARD_REPORT = Buffer.from(
  "05010906a101050719e029e71500250175019508810295017508810195057501050819012905910295017503910195067508150025650507190029658100c0",
  "hex",
);
const HID = { GET_REPORT: 0x01, GET_IDLE: 0x02, GET_PROTOCOL: 0x03, SET_REPORT: 0x09, SET_IDLE: 0x0a, SET_PROTOCOL: 0x0b } as const;
const SHIFT = 0x02;

/** HID usage (keyboard page 0x07) and modifier for a character, or undefined if not typable. */
export function keyFor(ch: string): { mod: number; usage: number } | undefined {
  const c = ch.charCodeAt(0);
  if (ch >= "a" && ch <= "z") return { mod: 0, usage: 4 + c - 97 };
  if (ch >= "A" && ch <= "Z") return { mod: SHIFT, usage: 4 + c - 65 };
  if (ch >= "1" && ch <= "9") return { mod: 0, usage: 30 + c - 49 };
  const table: Record<string, [number, number]> = {
    "0": [0, 39], "\n": [0, 40], "\t": [0, 43], " ": [0, 44], "-": [0, 45], "=": [0, 46], "[": [0, 47], "]": [0, 48], "\\": [0, 49],
    ";": [0, 51], "'": [0, 52], "`": [0, 53], ",": [0, 54], ".": [0, 55], "/": [0, 56],
    "!": [SHIFT, 30], "@": [SHIFT, 31], "#": [SHIFT, 32], "$": [SHIFT, 33], "%": [SHIFT, 34], "^": [SHIFT, 35], "&": [SHIFT, 36], "*": [SHIFT, 37], "(": [SHIFT, 38], ")": [SHIFT, 39],
    "_": [SHIFT, 45], "+": [SHIFT, 46], "{": [SHIFT, 47], "}": [SHIFT, 48], "|": [SHIFT, 49], ":": [SHIFT, 51], '"': [SHIFT, 52], "~": [SHIFT, 53], "<": [SHIFT, 54], ">": [SHIFT, 55], "?": [SHIFT, 56],
  };
  const t = table[ch];
  return t === undefined ? undefined : { mod: t[0], usage: t[1] };
}

/** The reports that type `text`: press, release per character. */
export function reportsFor(text: string): Buffer[] {
  const out: Buffer[] = [];
  for (const ch of text) {
    const k = keyFor(ch);
    if (k === undefined) throw new UsageError(`hid-keyboard cannot type ${JSON.stringify(ch)} (US layout, printable ASCII, tab and newline)`);
    out.push(Buffer.from([k.mod, 0, k.usage, 0, 0, 0, 0, 0]), Buffer.alloc(8));
  }
  return out;
}

export class HidKeyboard extends VirtualDevice {
  private readonly queue: Buffer[];
  private readonly pending = new PendingUrbs<undefined>();
  private startAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** LED state last set by the host (SET_REPORT output report) */
  leds = 0;
  typed = 0;

  constructor(devid: number, text: string, private readonly delayMs = 2000, name = "vkbd") {
    super(name, devid, "12", modelDescriptor(0x0105, "Virtual Keyboard", [{ bConfigurationValue: 1, bmAttributes: 0xa0, bMaxPower: 50, interfaces: [{ bInterfaceNumber: 0, bAlternateSetting: 0, bInterfaceClass: 3, bInterfaceSubClass: 1, bInterfaceProtocol: 1,
        extra: Buffer.from([9, DescType.HID, 0x11, 0x01, 0, 1, DescType.HID_REPORT, BOOT_KEYBOARD_REPORT.length & 0xff, BOOT_KEYBOARD_REPORT.length >> 8]),
        endpoints: [{ bEndpointAddress: 0x81, bmAttributes: 3, wMaxPacketSize: 8, bInterval: 10 }] }] }]));
    this.queue = reportsFor(text);
  }

  get remaining(): number {
    return this.queue.length;
  }

  override async close(): Promise<void> {
    clearTimeout(this.timer);
    this.pending.failAll(Errno.ESHUTDOWN);
  }

  protected override classRequest(s: Setup, out: Buffer): UrbResult | undefined {
    if (recipient(s) !== Recipient.INTERFACE || s.wIndex !== 0) return undefined;
    if (requestType(s) === RequestType.STANDARD && s.bRequest === Request.GET_DESCRIPTOR) {
      if (s.wValue >> 8 === DescType.HID_REPORT) return { status: 0, data: BOOT_KEYBOARD_REPORT };
      if (s.wValue >> 8 === DescType.HID) return { status: 0, data: Buffer.from([9, DescType.HID, 0x11, 0x01, 0, 1, DescType.HID_REPORT, BOOT_KEYBOARD_REPORT.length, 0]) };
      return undefined;
    }
    if (requestType(s) !== RequestType.CLASS) return undefined;
    switch (s.bRequest) {
      case HID.SET_IDLE:
      case HID.SET_PROTOCOL:
        return { status: 0 };
      case HID.SET_REPORT:
        if (out.length > 0) this.leds = out[0]!;
        return { status: 0, actualLength: out.length };
      case HID.GET_REPORT:
        return { status: 0, data: Buffer.alloc(8) };
      case HID.GET_IDLE:
        return { status: 0, data: Buffer.from([0]) };
      case HID.GET_PROTOCOL:
        return { status: 0, data: Buffer.from([1]) };
      default:
        return undefined;
    }
  }

  protected transfer(address: number, _cmd: CmdSubmit): UrbHandle {
    if (address !== 0x81) return { result: Promise.resolve(STALL), cancel() {} };
    return this.pending.add(undefined, () => {
      if (this.startAt === undefined) {
        this.startAt = Date.now() + this.delayMs;
        this.timer = setTimeout(() => this.serve(), this.delayMs);
      } else this.serve();
    });
  }

  private serve(): void {
    if (this.startAt === undefined || Date.now() < this.startAt) return;
    while (this.pending.length > 0 && this.queue.length > 0) {
      this.typed++;
      this.pending.answer({ status: 0, data: this.queue.shift()! });
    }
  }
}
