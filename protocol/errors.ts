/**
 * The error classes. Every error carries a stable code from the catalogue
 * (protocol/error-codes.ts); its class says what kind of failure it is, and so the exit status:
 * PeerDataError (the other side sent malformed data, or the relay or policy refused it) 2,
 * UsageError 64, InterruptedError 128 + the signal's number, any other UsbipError 1.
 * A malformed stream is not recoverable: the link is torn down.
 */
import { RelayCode, RuntimeCode, WireCode, type GlueErrorCode, type PeerDataErrorCode, type RuntimeErrorCode, type UsbipErrorCode } from "./error-codes.js";

export { GlueCode, RelayCode, RuntimeCode, WireCode, type UsbipErrorCode, type PeerDataErrorCode } from "./error-codes.js";

/** The codes a decoder or a relay rule reports with a byte offset (wire and relay tables). */
export const ErrorCode = { ...WireCode, ...RelayCode } as const;
export type ErrorCode = PeerDataErrorCode;

/** Where a rule was broken: the code, the absolute byte offset of the field, the seqnum if any. */
export interface Violation {
  code: string;
  offset: number;
  rule: string;
  seqnum?: number | undefined;
}

/** The one way a violation is written: "CODE at byte N (seqnum S): rule". */
export function formatViolation(v: Violation): string {
  return `${v.code} at byte ${v.offset}${v.seqnum === undefined ? "" : ` (seqnum ${v.seqnum})`}: ${v.rule}`;
}

/** Base class of every error this project reports with a stable code: a failure, exit status 1. */
export class UsbipError extends Error {
  readonly code: UsbipErrorCode;
  /** a peer-data code takes PeerDataError (exit status 2), which passes it on here */
  constructor(code: GlueErrorCode | RuntimeErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = "UsbipError";
  }

  /** The same error (class, code, fields) with "PREFIX: " before its message. */
  withPrefix(prefix: string): this {
    const copy = Object.create(Object.getPrototypeOf(this) as object) as this;
    Object.assign(copy, this);
    Object.defineProperty(copy, "message", { value: `${prefix}: ${this.message}`, writable: true, configurable: true });
    return copy;
  }
}

/** The other side sent malformed USB/IP data, or the relay or policy refused it (exit status 2). */
export class PeerDataError extends UsbipError {
  declare readonly code: PeerDataErrorCode;
  constructor(code: PeerDataErrorCode, message: string) {
    super(code as unknown as RuntimeErrorCode, message); // the base's parameter type keeps peer codes out of plain UsbipErrors
    this.name = "PeerDataError";
  }
}

/** A violation of the wire protocol or a relay rule found at `offset` in a stream. */
export class ProtocolError extends PeerDataError implements Violation {
  readonly offset: number;
  readonly rule: string;
  /** seqnum of the URB message involved, when there is one. */
  readonly seqnum: number | undefined;
  constructor(code: PeerDataErrorCode, offset: number, rule: string, seqnum?: number) {
    super(code, formatViolation({ code, offset, rule, seqnum }));
    this.name = "ProtocolError";
    this.offset = offset;
    this.rule = rule;
    this.seqnum = seqnum;
  }
}

/** The qrexec handshake line broke a rule (same shape as ProtocolError, own class for callers). */
export class HandshakeError extends ProtocolError {
  constructor(offset: number, rule: string) {
    super(WireCode.BAD_HANDSHAKE, offset, rule);
    this.name = "HandshakeError";
  }
}

/** A role refused a message from `from` (a relay rule, the wire, or the policy) and ended the link. */
export class RelayViolationError extends PeerDataError {
  constructor(
    readonly violation: Violation,
    from: "backend" | "frontend" | "peer",
  ) {
    super(RelayCode.RELAY_VIOLATION, violation.code === RelayCode.POLICY ? `device refused: ${violation.rule} (${violation.code})` : `refused a message from the ${from}: ${formatViolation(violation)}`);
    this.name = "RelayViolationError";
  }
}

/** Bad usage: an unknown option, a missing or invalid argument (exit status 64). */
export class UsageError extends UsbipError {
  constructor(message: string) {
    super(RuntimeCode.USAGE, message);
    this.name = "UsageError";
  }
}

/** A wait was ended by SIGINT/SIGTERM/SIGHUP: a clean, quiet stop (exit status 128 + N). */
export class InterruptedError extends UsbipError {
  constructor(
    readonly signal: NodeJS.Signals,
    what: string,
  ) {
    super(RuntimeCode.INTERRUPTED, `interrupted by ${signal} ${what}`);
    this.name = "InterruptedError";
  }
}
