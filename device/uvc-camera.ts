/**
 * A USB Video Class 1.0 camera model (`export --virtual uvc-camera`): high speed, one
 * VideoControl interface (camera input terminal → USB streaming output terminal) and one
 * VideoStreaming interface with one uncompressed YUY2 format, 160x120 at 30 frames/s, whose
 * alternate setting 1 has an asynchronous isochronous IN endpoint 0x81 of 1024 bytes per
 * microframe (125 µs). Linux's uvcvideo binds it as a capture device.
 *
 * The stream is paced by the wall clock (device/iso-in-stream.ts): frame f occupies
 * microframes ceil(f × 8000 / 30) onwards; its FRAME_BYTES are cut into packets of a 2-byte payload
 * header (bHeaderLength 2; bmHeaderInfo EOH | FID, FID toggling per frame, EOF on the frame's
 * last data packet) and up to 1022 data bytes; the microframes left until the next frame carry
 * header-only packets, as real cameras send. Microframes no URB was there for are lost, so a
 * capture shows frames missing or incomplete, never out of order.
 *
 * The content tells frame and offset apart: byte i of frame f is (f + i) & 0xff, except the
 * first four, which hold f as a 32-bit little-endian number.
 */
import { Recipient, RequestType, recipient, requestType, type Setup } from "../usb/setup.js";
import { IsoInDevice } from "./iso-in-device.js";
import { realClock, type Clock } from "./iso-in-stream.js";
import type { UrbResult } from "./urb-device.js";
import { modelDescriptor, STALL } from "./virtual-device.js";

export const UVC_WIDTH = 160;
export const UVC_HEIGHT = 120;
/** YUY2: 2 bytes per pixel */
export const UVC_FRAME_BYTES = UVC_WIDTH * UVC_HEIGHT * 2;
export const UVC_FPS = 30;
/** dwFrameInterval, in 100 ns units */
const FRAME_INTERVAL_100NS = Math.round(10_000_000 / UVC_FPS);
const ENDPOINT = 0x81;
/** high speed: one packet per 125 µs microframe */
const MICROFRAME_MS = 0.125;
export const UVC_MAX_PACKET = 1024;
const HEADER = 2;
export const UVC_DATA_PER_PACKET = UVC_MAX_PACKET - HEADER;
/** microframes per second; frame f starts on microframe ceil(f × 8000 / fps) (integers: exact) */
const MICROFRAMES_PER_S = 1000 / MICROFRAME_MS;

/** Video class codes (USB Device Class Definition for Video Devices 1.0, appendix A) */
const CC_VIDEO = 0x0e;
const SC = { VIDEOCONTROL: 1, VIDEOSTREAMING: 2 } as const;
const CS_INTERFACE = 0x24;
const VC = { HEADER: 1, INPUT_TERMINAL: 2, OUTPUT_TERMINAL: 3 } as const;
const VS = { INPUT_HEADER: 1, FORMAT_UNCOMPRESSED: 4, FRAME_UNCOMPRESSED: 5 } as const;
const REQ = { SET_CUR: 0x01, GET_CUR: 0x81, GET_MIN: 0x82, GET_MAX: 0x83, GET_RES: 0x84, GET_LEN: 0x85, GET_INFO: 0x86, GET_DEF: 0x87 } as const;
/** VideoStreaming interface controls (wValue high byte) */
const VS_PROBE_CONTROL = 1;
const VS_COMMIT_CONTROL = 2;
/** the probe/commit structure's length in UVC 1.0 */
export const PROBE_LENGTH = 26;
/** bmHeaderInfo bits */
export const UVC_HEADER = { FID: 0x01, EOF: 0x02, EOH: 0x80 } as const;
/** GUID of YUY2 (32595559-0000-0010-8000-00AA00389B71), as it is on the wire */
const GUID_YUY2 = [0x59, 0x55, 0x59, 0x32, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];

const u16 = (v: number) => [v & 0xff, v >> 8];
const u32 = (v: number) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];

/** Byte `i` of frame `f` (see above). */
export function frameByte(f: number, i: number): number {
  return i < 4 ? (f >>> (8 * i)) & 0xff : (f + i) & 0xff;
}

/** The first microframe of frame `f`. */
export const frameStart = (f: number) => Math.ceil((f * MICROFRAMES_PER_S) / UVC_FPS);

/** The packet for microframe `m` of a stream (at most `room` bytes): header, and the frame's bytes it carries. */
export function cameraPacket(m: number, room: number): Buffer {
  if (room < HEADER) return Buffer.alloc(0);
  const f = Math.floor((m * UVC_FPS) / MICROFRAMES_PER_S); // the last frame started at or before m
  const k = m - frameStart(f); // packet number within the frame
  const per = Math.min(UVC_DATA_PER_PACKET, room - HEADER);
  const from = k * per;
  const n = Math.max(0, Math.min(per, UVC_FRAME_BYTES - from));
  const b = Buffer.allocUnsafe(HEADER + n);
  b[0] = HEADER;
  b[1] = UVC_HEADER.EOH | (f & 1 ? UVC_HEADER.FID : 0) | (n > 0 && from + n === UVC_FRAME_BYTES ? UVC_HEADER.EOF : 0);
  for (let i = 0; i < n; i++) b[HEADER + i] = frameByte(f, from + i);
  return b;
}

/** The probe/commit values the device settles on (UVC 1.0 §4.3.1.1): whatever is asked, one format and one frame. */
function probeValues(): Buffer {
  const b = Buffer.alloc(PROBE_LENGTH);
  b.writeUInt16LE(0, 0); // bmHint
  b[2] = 1; // bFormatIndex
  b[3] = 1; // bFrameIndex
  b.writeUInt32LE(FRAME_INTERVAL_100NS, 4);
  b.writeUInt32LE(UVC_FRAME_BYTES, 18); // dwMaxVideoFrameSize
  b.writeUInt32LE(UVC_MAX_PACKET, 22); // dwMaxPayloadTransferSize
  return b;
}

export class UvcCamera extends IsoInDevice {
  /** the last probe and commit the host sent (SET_CUR), for tests and the log */
  probe: Buffer | undefined;
  commit: Buffer | undefined;

  constructor(devid: number, name = "vcam", clock: Clock = realClock) {
    const vc = Buffer.from([
      // VC header: bcdUVC 1.00, wTotalLength (13 + 18 + 9), dwClockFrequency 48 MHz, one streaming interface (1)
      13, CS_INTERFACE, VC.HEADER, ...u16(0x0100), ...u16(40), ...u32(48_000_000), 1, 1,
      // input terminal 1: camera (0x0201), no focal lengths, no controls
      18, CS_INTERFACE, VC.INPUT_TERMINAL, 1, ...u16(0x0201), 0, 0, ...u16(0), ...u16(0), ...u16(0), 3, 0, 0, 0,
      // output terminal 2: USB streaming (0x0101), from terminal 1
      9, CS_INTERFACE, VC.OUTPUT_TERMINAL, 2, ...u16(0x0101), 0, 1, 0,
    ]);
    const format = [
      // uncompressed format 1: YUY2, 16 bits per pixel, one frame descriptor, default frame 1
      27, CS_INTERFACE, VS.FORMAT_UNCOMPRESSED, 1, 1, ...GUID_YUY2, 16, 1, 0, 0, 0, 0,
    ];
    const bitRate = UVC_FRAME_BYTES * 8 * UVC_FPS;
    const frame = [
      // frame 1: 160x120, bit rate, max frame buffer, default interval, one discrete interval
      30, CS_INTERFACE, VS.FRAME_UNCOMPRESSED, 1, 0, ...u16(UVC_WIDTH), ...u16(UVC_HEIGHT), ...u32(bitRate), ...u32(bitRate), ...u32(UVC_FRAME_BYTES), ...u32(FRAME_INTERVAL_100NS), 1, ...u32(FRAME_INTERVAL_100NS),
    ];
    const vsTotal = 14 + format.length + frame.length;
    const vs = Buffer.from([
      // VS input header: one format, wTotalLength, endpoint 0x81, linked to terminal 2, no still capture, one control byte (none)
      14, CS_INTERFACE, VS.INPUT_HEADER, 1, ...u16(vsTotal), ENDPOINT, 0, 2, 0, 0, 0, 1, 0,
      ...format,
      ...frame,
    ]);
    super(name, devid, "480", modelDescriptor(0x0108, "Virtual Camera", [{ bConfigurationValue: 1, bmAttributes: 0x80, bMaxPower: 100, interfaces: [
        { bInterfaceNumber: 0, bAlternateSetting: 0, bInterfaceClass: CC_VIDEO, bInterfaceSubClass: SC.VIDEOCONTROL, bInterfaceProtocol: 0, extra: vc, endpoints: [] },
        { bInterfaceNumber: 1, bAlternateSetting: 0, bInterfaceClass: CC_VIDEO, bInterfaceSubClass: SC.VIDEOSTREAMING, bInterfaceProtocol: 0, extra: vs, endpoints: [] },
        // iso, asynchronous (bmAttributes 0x05), every microframe (bInterval 1), one transaction of 1024
        { bInterfaceNumber: 1, bAlternateSetting: 1, bInterfaceClass: CC_VIDEO, bInterfaceSubClass: SC.VIDEOSTREAMING, bInterfaceProtocol: 0,
          endpoints: [{ bEndpointAddress: ENDPOINT, bmAttributes: 0x05, wMaxPacketSize: UVC_MAX_PACKET, bInterval: 1 }] },
      ] }]), ENDPOINT, MICROFRAME_MS, cameraPacket, clock);
  }

  protected override classRequest(s: Setup, out: Buffer): UrbResult | undefined {
    if (requestType(s) !== RequestType.CLASS || recipient(s) !== Recipient.INTERFACE || (s.wIndex & 0xff) !== 1) return undefined;
    const control = s.wValue >> 8;
    if (control !== VS_PROBE_CONTROL && control !== VS_COMMIT_CONTROL) return undefined;
    switch (s.bRequest) {
      case REQ.SET_CUR:
        if (out.length < PROBE_LENGTH) return STALL;
        if (control === VS_PROBE_CONTROL) this.probe = Buffer.from(out.subarray(0, PROBE_LENGTH));
        else this.commit = Buffer.from(out.subarray(0, PROBE_LENGTH));
        return { status: 0, actualLength: PROBE_LENGTH };
      case REQ.GET_CUR:
      case REQ.GET_MIN:
      case REQ.GET_MAX:
      case REQ.GET_DEF:
        return { status: 0, data: probeValues().subarray(0, Math.min(PROBE_LENGTH, s.wLength)) };
      case REQ.GET_RES:
        return { status: 0, data: Buffer.alloc(Math.min(PROBE_LENGTH, s.wLength)) };
      case REQ.GET_LEN:
        return { status: 0, data: Buffer.from(u16(PROBE_LENGTH)) };
      case REQ.GET_INFO:
        return { status: 0, data: Buffer.from([0x03]) }; // supports GET and SET
      default:
        return undefined;
    }
  }

}
