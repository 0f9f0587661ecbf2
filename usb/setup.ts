/** The 8-byte SETUP packet of a control transfer (USB 2.0 9.3), little-endian fields. */
export interface Setup {
  bmRequestType: number;
  bRequest: number;
  wValue: number;
  wIndex: number;
  wLength: number;
}

export const Request = { GET_STATUS: 0, CLEAR_FEATURE: 1, SET_FEATURE: 3, SET_ADDRESS: 5, GET_DESCRIPTOR: 6, SET_DESCRIPTOR: 7, GET_CONFIGURATION: 8, SET_CONFIGURATION: 9, GET_INTERFACE: 10, SET_INTERFACE: 11 } as const;
/** bmRequestType bits 5-6 */
export const RequestType = { STANDARD: 0, CLASS: 1, VENDOR: 2 } as const;
/** bmRequestType bits 0-4 */
export const Recipient = { DEVICE: 0, INTERFACE: 1, ENDPOINT: 2 } as const;
export const ENDPOINT_HALT = 0;

export function parseSetup(b: Buffer): Setup {
  return { bmRequestType: b[0]!, bRequest: b[1]!, wValue: b.readUInt16LE(2), wIndex: b.readUInt16LE(4), wLength: b.readUInt16LE(6) };
}

export function encodeSetup(s: Setup): Buffer {
  const b = Buffer.alloc(8);
  b[0] = s.bmRequestType;
  b[1] = s.bRequest;
  b.writeUInt16LE(s.wValue, 2);
  b.writeUInt16LE(s.wIndex, 4);
  b.writeUInt16LE(s.wLength, 6);
  return b;
}

export const requestType = (s: Setup): number => (s.bmRequestType >> 5) & 3;
export const recipient = (s: Setup): number => s.bmRequestType & 0x1f;
export const isIn = (s: Setup): boolean => (s.bmRequestType & 0x80) !== 0;
