/**
 * Typed protocol errors. Every error carries a stable `code`, the absolute byte offset in
 * the stream where the offending field starts, and the rule that was broken.
 * A malformed stream is not recoverable: the link is torn down.
 */

/** Stable error codes. Add new codes; never rename one (scripts match on them). */
export const ErrorCode = {
  BAD_VERSION: "USBIP_ERR_BAD_VERSION",
  UNKNOWN_OP: "USBIP_ERR_UNKNOWN_OP",
  UNEXPECTED_OP: "USBIP_ERR_UNEXPECTED_OP",
  BAD_OP_STATUS: "USBIP_ERR_BAD_OP_STATUS",
  TOO_MANY_DEVICES: "USBIP_ERR_TOO_MANY_DEVICES",
  BAD_STRING: "USBIP_ERR_BAD_STRING",
  UNKNOWN_COMMAND: "USBIP_ERR_UNKNOWN_COMMAND",
  WRONG_STREAM: "USBIP_ERR_WRONG_STREAM",
  BAD_DIRECTION: "USBIP_ERR_BAD_DIRECTION",
  BAD_ENDPOINT: "USBIP_ERR_BAD_ENDPOINT",
  NEGATIVE_LENGTH: "USBIP_ERR_NEGATIVE_LENGTH",
  LENGTH_LIMIT: "USBIP_ERR_LENGTH_LIMIT",
  PACKET_COUNT: "USBIP_ERR_PACKET_COUNT",
  ISO_SUM: "USBIP_ERR_ISO_SUM",
  ISO_DESCRIPTOR: "USBIP_ERR_ISO_DESCRIPTOR",
  DUPLICATE_SEQNUM: "USBIP_ERR_DUPLICATE_SEQNUM",
  UNKNOWN_SEQNUM: "USBIP_ERR_UNKNOWN_SEQNUM",
  UNKNOWN_UNLINK: "USBIP_ERR_UNKNOWN_UNLINK",
  ACTUAL_LENGTH: "USBIP_ERR_ACTUAL_LENGTH",
  OUT_PAYLOAD_IN_RET: "USBIP_ERR_OUT_PAYLOAD_IN_RET",
  TOO_MANY_OUTSTANDING: "USBIP_ERR_TOO_MANY_OUTSTANDING",
  TRAILING_DATA: "USBIP_ERR_TRAILING_DATA",
  TRUNCATED: "USBIP_ERR_TRUNCATED",
  BAD_HANDSHAKE: "USBIP_ERR_BAD_HANDSHAKE",
  // relay rules (protocol/relay-rules.ts)
  STATUS_NOT_ALLOWED: "USBIP_ERR_STATUS_NOT_ALLOWED",
  ERROR_COUNT: "USBIP_ERR_ERROR_COUNT",
  ISO_MISMATCH: "USBIP_ERR_ISO_MISMATCH",
  ISO_PACKET_LENGTH: "USBIP_ERR_ISO_PACKET_LENGTH",
  WRONG_DEVID: "USBIP_ERR_WRONG_DEVID",
  NO_SUCH_ENDPOINT: "USBIP_ERR_NO_SUCH_ENDPOINT",
  CONTROL_LENGTH: "USBIP_ERR_CONTROL_LENGTH",
  UNKNOWN_VICTIM: "USBIP_ERR_UNKNOWN_VICTIM",
  POLICY: "USBIP_ERR_POLICY",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class of every error this project reports with a stable code. */
export class UsbipError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = "UsbipError";
  }
}

/** A violation of the wire protocol found at `offset` in a stream. */
export class ProtocolError extends UsbipError {
  readonly offset: number;
  readonly rule: string;
  /** seqnum of the URB message involved, when there is one. */
  readonly seqnum: number | undefined;
  constructor(code: ErrorCode, offset: number, rule: string, seqnum?: number) {
    super(code, `${code} at byte ${offset}${seqnum === undefined ? "" : ` (seqnum ${seqnum})`}: ${rule}`);
    this.name = "ProtocolError";
    this.offset = offset;
    this.rule = rule;
    this.seqnum = seqnum;
  }
}

/** The qrexec handshake line broke a rule (same shape as ProtocolError, own class for callers). */
export class HandshakeError extends ProtocolError {
  constructor(offset: number, rule: string) {
    super(ErrorCode.BAD_HANDSHAKE, offset, rule);
    this.name = "HandshakeError";
  }
}

/** Codes that mean "the peer sent malformed USB/IP data, or the relay refused it" (exit status 2). */
export const PEER_DATA_CODES: ReadonlySet<string> = new Set<string>([...Object.values(ErrorCode), "USBIP_ERR_RELAY_VIOLATION"]);

/** A wait was ended by SIGINT/SIGTERM/SIGHUP: a clean, quiet stop (exit status 128 + N). */
export class InterruptedError extends UsbipError {
  constructor(
    readonly signal: NodeJS.Signals,
    what: string,
  ) {
    super("USBIP_ERR_INTERRUPTED", `interrupted by ${signal} ${what}`);
    this.name = "InterruptedError";
  }
}
