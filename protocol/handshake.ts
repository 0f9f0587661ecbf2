/**
 * The qrexec link's handshake, seed-compatible (QubesOS usb-export / usb-import): before any
 * URB, the backend writes one line "<devid> <speed>\n" (a third, reserved field may follow).
 * devid = busnum << 16 | devnum in decimal, 0..2^32-1; speed is a sysfs speed string.
 *
 * The frontend must not read past the '\n' before handing the socket to vhci-hcd, so the
 * parser reports exactly how many bytes the line took.
 */
import { HandshakeError } from "./errors.js";
import type { Handshake } from "./messages.js";
import { isSpeedString, SPEED_STRINGS } from "./speed.js";

/** Longest line accepted, '\n' included; a longer one is refused before it is buffered. */
export const MAX_HANDSHAKE_LINE = 256;

export type HandshakeScan =
  | { type: "need-more" }
  | { type: "ok"; handshake: Handshake; length: number }
  | { type: "error"; error: HandshakeError };

const isBlank = (c: number): boolean => c === 0x20 || c === 0x09;

/**
 * Look for a complete handshake line at the start of `bytes`. `offset` is the absolute stream
 * offset of bytes[0], used in errors.
 */
export function scanHandshake(bytes: Buffer, offset = 0): HandshakeScan {
  const limit = Math.min(bytes.length, MAX_HANDSHAKE_LINE);
  let nl = -1;
  for (let i = 0; i < limit; i++) {
    const c = bytes[i]!;
    if (c === 0x0a) {
      nl = i;
      break;
    }
    if (!isBlank(c) && (c < 0x21 || c > 0x7e)) {
      return err(offset + i, `byte 0x${c.toString(16).padStart(2, "0")} is not allowed in the handshake line (printable ASCII, spaces and tabs only)`);
    }
  }
  if (nl < 0) {
    if (bytes.length >= MAX_HANDSHAKE_LINE) {
      return err(offset, `handshake line longer than ${MAX_HANDSHAKE_LINE} bytes`);
    }
    return { type: "need-more" };
  }
  // Split into fields like the shell's `read devid speed extra`: the last field takes the rest.
  const line = bytes.toString("latin1", 0, nl);
  let i = 0;
  const fieldAt: number[] = [];
  const fields: string[] = [];
  while (fields.length < 2) {
    while (i < line.length && isBlank(line.charCodeAt(i))) i++;
    if (i >= line.length) break;
    const start = i;
    while (i < line.length && !isBlank(line.charCodeAt(i))) i++;
    fieldAt.push(start);
    fields.push(line.slice(start, i));
  }
  const rest = line.slice(i).replace(/^[ \t]+|[ \t]+$/g, "");
  if (fields.length === 0) return err(offset, "empty handshake line: no device info received (the backend failed; check its log)");
  const devidText = fields[0]!;
  if (!/^[0-9]{1,10}$/.test(devidText) || Number(devidText) > 0xffff_ffff) {
    return err(offset + fieldAt[0]!, `invalid devid "${devidText}": expected a decimal integer 0 <= devid < 4294967296`);
  }
  if (fields.length < 2) return err(offset + nl, "handshake line has no speed field");
  const speed = fields[1]!;
  if (!isSpeedString(speed)) {
    return err(offset + fieldAt[1]!, `invalid speed "${speed}": expected one of ${SPEED_STRINGS.map((s) => `"${s}"`).join(", ")}`);
  }
  const handshake: Handshake = { kind: "HANDSHAKE", devid: Number(devidText), speed };
  if (rest.length > 0) handshake.reserved = rest;
  return { type: "ok", handshake, length: nl + 1 };
}

/** The line a backend sends: "<devid> <speed>\n" (plus the reserved field when given). */
export function formatHandshake(h: Pick<Handshake, "devid" | "speed" | "reserved">): Buffer {
  if (!Number.isInteger(h.devid) || h.devid < 0 || h.devid > 0xffff_ffff) throw new RangeError(`devid out of range: ${h.devid}`);
  if (!isSpeedString(h.speed)) throw new RangeError(`not a speed string: ${h.speed}`);
  if (h.reserved !== undefined && !/^[\x20-\x7e]*$/.test(h.reserved)) throw new RangeError("reserved field must be printable ASCII");
  const extra = h.reserved === undefined || h.reserved === "" ? "" : ` ${h.reserved}`;
  return Buffer.from(`${h.devid} ${h.speed}${extra}\n`, "latin1");
}

function err(offset: number, rule: string): HandshakeScan {
  return { type: "error", error: new HandshakeError(offset, rule) };
}
