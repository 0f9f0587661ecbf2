/**
 * The error catalogue: every stable code this project reports, in one place. Scripts match on
 * the codes (they are in the README's error table): add codes, never rename one. The exit status
 * of an error is chosen by its class (protocol/errors.ts), not by its code.
 */

/** The wire: a USB/IP stream, an OP message or the handshake line broke a rule (the decoders). */
export const WireCode = {
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
  /** a USB descriptor from the device side that does not parse (usb/descriptors.ts) */
  DESCRIPTOR: "USBIP_ERR_DESCRIPTOR",
} as const;

/** The relay's rules beyond the wire format (protocol/relay-rules.ts, protocol/policy.ts). */
export const RelayCode = {
  STATUS_NOT_ALLOWED: "USBIP_ERR_STATUS_NOT_ALLOWED",
  ERROR_COUNT: "USBIP_ERR_ERROR_COUNT",
  ISO_MISMATCH: "USBIP_ERR_ISO_MISMATCH",
  ISO_PACKET_LENGTH: "USBIP_ERR_ISO_PACKET_LENGTH",
  WRONG_DEVID: "USBIP_ERR_WRONG_DEVID",
  NO_SUCH_ENDPOINT: "USBIP_ERR_NO_SUCH_ENDPOINT",
  CONTROL_LENGTH: "USBIP_ERR_CONTROL_LENGTH",
  UNKNOWN_VICTIM: "USBIP_ERR_UNKNOWN_VICTIM",
  POLICY: "USBIP_ERR_POLICY",
  /** a role's summary of a refused message (the rule's own code is in its message) */
  RELAY_VIOLATION: "USBIP_ERR_RELAY_VIOLATION",
} as const;

/** The kernel glue: sysfs, modules, vhci-hcd, usbip-host, the devices on this machine. */
export const GlueCode = {
  SYSFS: "USBIP_ERR_SYSFS",
  NO_VHCI: "USBIP_ERR_NO_VHCI",
  OLD_KERNEL: "USBIP_ERR_OLD_KERNEL",
  NO_FREE_PORT: "USBIP_ERR_NO_FREE_PORT",
  ATTACH: "USBIP_ERR_ATTACH",
  TIMEOUT: "USBIP_ERR_TIMEOUT",
  NO_DEVICE: "USBIP_ERR_NO_DEVICE",
  /** a device that cannot be exported as it is (a hub, an interface, an unknown speed, …) */
  BAD_DEVICE: "USBIP_ERR_BAD_DEVICE",
  AMBIGUOUS_DEVICE: "USBIP_ERR_AMBIGUOUS_DEVICE",
  NOT_AVAILABLE: "USBIP_ERR_NOT_AVAILABLE",
  ALREADY_EXPORTED: "USBIP_ERR_ALREADY_EXPORTED",
  NO_USBIP_HOST: "USBIP_ERR_NO_USBIP_HOST",
  MODPROBE: "USBIP_ERR_MODPROBE",
  NOT_A_SOCKET: "USBIP_ERR_NOT_A_SOCKET",
  NOT_ATTACHED: "USBIP_ERR_NOT_ATTACHED",
  STATEFILE: "USBIP_ERR_STATEFILE",
  GIVE_BACK: "USBIP_ERR_GIVE_BACK",
  BUSY: "USBIP_ERR_BUSY",
  LIBUSB: "USBIP_ERR_LIBUSB",
} as const;

/** The roles at run time: peers, links, files, the qrexec agent, the command line. */
export const RuntimeCode = {
  /** a device answered a request with a failure (the userspace host's probe, the disk client) */
  DEVICE: "USBIP_ERR_DEVICE",
  NO_HANDSHAKE: "USBIP_ERR_NO_HANDSHAKE",
  CLOSED: "USBIP_ERR_CLOSED",
  IMPORT: "USBIP_ERR_IMPORT",
  CONNECT: "USBIP_ERR_CONNECT",
  LISTEN: "USBIP_ERR_LISTEN",
  SERVICE: "USBIP_ERR_SERVICE",
  AGENT: "USBIP_ERR_AGENT",
  ENV: "USBIP_ERR_ENV",
  INPUT: "USBIP_ERR_INPUT",
  OUTPUT: "USBIP_ERR_OUTPUT",
  /** a policy file that does not parse (protocol/policy.ts) */
  POLICY_FILE: "USBIP_ERR_POLICY_FILE",
  INTERRUPTED: "USBIP_ERR_INTERRUPTED",
  USAGE: "USBIP_ERR_USAGE",
} as const;

type Values<T> = T[keyof T];
export type WireErrorCode = Values<typeof WireCode>;
export type RelayErrorCode = Values<typeof RelayCode>;
export type GlueErrorCode = Values<typeof GlueCode>;
export type RuntimeErrorCode = Values<typeof RuntimeCode>;
/** What the other side sent, or the relay refused: exit status 2. */
export type PeerDataErrorCode = WireErrorCode | RelayErrorCode;
export type UsbipErrorCode = PeerDataErrorCode | GlueErrorCode | RuntimeErrorCode;

/** Every code, once (the catalogue test checks that no two tables share one). */
export const ALL_CODES: readonly UsbipErrorCode[] = [...Object.values(WireCode), ...Object.values(RelayCode), ...Object.values(GlueCode), ...Object.values(RuntimeCode)];
