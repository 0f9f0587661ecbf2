/**
 * A USB Audio Class 1.0 microphone model (`export --virtual uac-microphone`): full speed, one
 * AudioControl interface (microphone input terminal → USB streaming output terminal) and one
 * AudioStreaming interface whose alternate setting 1 has an asynchronous isochronous IN
 * endpoint 0x81: PCM, 2 channels, 16 bits, 48 kHz, 48 sample frames (192 bytes) per 1 ms
 * frame. Linux's snd-usb-audio binds it as a capture device.
 *
 * The signal is a counter a receiver can follow sample by sample: sample frame number s
 * (counted from the first USB frame of the stream, 48 per millisecond whether or not the host
 * took them) carries s as a 32-bit little-endian word, its low half in the left channel and
 * its high half in the right. USB frames no URB was there for are lost, as with a real
 * microphone, so a capture shows gaps but never a value out of order, and tells how much was
 * lost exactly.
 */
import { Recipient, RequestType, recipient, requestType, type Setup } from "../usb/setup.js";
import { IsoInDevice } from "./iso-in-device.js";
import { realClock, type Clock } from "./iso-in-stream.js";
import type { UrbResult } from "./urb-device.js";
import { modelDescriptor, STALL } from "./virtual-device.js";

export const MIC_RATE = 48_000;
export const MIC_SAMPLES_PER_FRAME = MIC_RATE / 1000;
const ENDPOINT = 0x81;
export const MIC_CHANNELS = 2;
const BYTES_PER_SAMPLE_FRAME = 2 * MIC_CHANNELS;
const MAX_PACKET = MIC_SAMPLES_PER_FRAME * BYTES_PER_SAMPLE_FRAME;

/** Audio class codes (USB Device Class Definition for Audio Devices 1.0, appendix A) */
const CS_INTERFACE = 0x24;
const CS_ENDPOINT = 0x25;
const AC = { HEADER: 1, INPUT_TERMINAL: 2, OUTPUT_TERMINAL: 3 } as const;
const AS = { GENERAL: 1, FORMAT_TYPE: 2 } as const;
const REQ = { SET_CUR: 0x01, GET_CUR: 0x81, GET_MIN: 0x82, GET_MAX: 0x83, GET_RES: 0x84 } as const;
const SAMPLING_FREQ_CONTROL = 0x01;

const u16 = (v: number) => [v & 0xff, v >> 8];
const u24 = (v: number) => [v & 0xff, (v >> 8) & 0xff, v >> 16];

/** The counter's bytes for one USB frame: sample frames frame*48 … frame*48+47 (at most `room` bytes, whole sample frames). */
export function rampFrame(frame: number, room: number): Buffer {
  const n = Math.min(MIC_SAMPLES_PER_FRAME, Math.floor(room / BYTES_PER_SAMPLE_FRAME));
  const b = Buffer.allocUnsafe(n * BYTES_PER_SAMPLE_FRAME);
  const first = frame * MIC_SAMPLES_PER_FRAME;
  for (let i = 0; i < n; i++) b.writeUInt32LE((first + i) >>> 0, i * BYTES_PER_SAMPLE_FRAME);
  return b;
}

export class UacMicrophone extends IsoInDevice {
  /** the sampling frequency the host last asked for (SET_CUR on the endpoint); the device keeps 48 kHz */
  requestedRate: number | undefined;
  constructor(devid: number, name = "vmic", clock: Clock = realClock) {
    const ac = Buffer.from([
      // AC header: bcdADC 1.00, wTotalLength of the class-specific AC descriptors (9 + 12 + 9), one streaming interface (1)
      9, CS_INTERFACE, AC.HEADER, ...u16(0x0100), ...u16(30), 1, 1,
      // input terminal 1: microphone (0x0201), 2 channels (left front, right front)
      12, CS_INTERFACE, AC.INPUT_TERMINAL, 1, ...u16(0x0201), 0, MIC_CHANNELS, ...u16(0x0003), 0, 0,
      // output terminal 2: USB streaming (0x0101), from terminal 1
      9, CS_INTERFACE, AC.OUTPUT_TERMINAL, 2, ...u16(0x0101), 0, 1, 0,
    ]);
    const asGeneral = Buffer.from([
      // AS general: linked to terminal 2, 1 frame delay, PCM (wFormatTag 1)
      7, CS_INTERFACE, AS.GENERAL, 2, 1, ...u16(0x0001),
      // format type I: 2 channels, 2-byte subframes, 16 bits, one discrete rate
      11, CS_INTERFACE, AS.FORMAT_TYPE, 1, MIC_CHANNELS, 2, 16, 1, ...u24(MIC_RATE),
    ]);
    // class-specific endpoint: sampling frequency control, no lock delay
    const csEndpoint = Buffer.from([7, CS_ENDPOINT, 1, SAMPLING_FREQ_CONTROL, 0, ...u16(0)]);
    super(name, devid, "12", modelDescriptor(0x0107, "Virtual Microphone", [{ bConfigurationValue: 1, bmAttributes: 0x80, bMaxPower: 50, interfaces: [
        { bInterfaceNumber: 0, bAlternateSetting: 0, bInterfaceClass: 1, bInterfaceSubClass: 1, bInterfaceProtocol: 0, extra: ac, endpoints: [] },
        { bInterfaceNumber: 1, bAlternateSetting: 0, bInterfaceClass: 1, bInterfaceSubClass: 2, bInterfaceProtocol: 0, endpoints: [] },
        { bInterfaceNumber: 1, bAlternateSetting: 1, bInterfaceClass: 1, bInterfaceSubClass: 2, bInterfaceProtocol: 0, extra: asGeneral,
          // iso, asynchronous (bmAttributes 0x05), 1 ms
          endpoints: [{ bEndpointAddress: ENDPOINT, bmAttributes: 0x05, wMaxPacketSize: MAX_PACKET, bInterval: 1, audio: { bRefresh: 0, bSynchAddress: 0 }, extra: csEndpoint }] },
      ] }]), ENDPOINT, 1, rampFrame, clock);
  }

  protected override classRequest(s: Setup, out: Buffer): UrbResult | undefined {
    if (requestType(s) !== RequestType.CLASS || recipient(s) !== Recipient.ENDPOINT || (s.wIndex & 0xff) !== ENDPOINT) return undefined;
    if (s.wValue >> 8 !== SAMPLING_FREQ_CONTROL) return undefined;
    switch (s.bRequest) {
      case REQ.SET_CUR:
        if (out.length < 3) return STALL;
        // one discrete rate: the device keeps 48 kHz whatever is asked, and GET_CUR says so
        this.requestedRate = out.readUIntLE(0, 3);
        return { status: 0, actualLength: 3 };
      case REQ.GET_CUR:
      case REQ.GET_MIN:
      case REQ.GET_MAX:
        return { status: 0, data: Buffer.from(u24(MIC_RATE)) };
      case REQ.GET_RES:
        return { status: 0, data: Buffer.from(u24(0)) };
      default:
        return undefined;
    }
  }

}
