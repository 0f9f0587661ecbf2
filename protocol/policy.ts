/**
 * Device policy for the frontend relay: allow or deny by USB interface class, enforced by
 * refusing the configuration — the configuration descriptor passing through the relay is read
 * before SET_CONFIGURATION, so no driver of the importing machine ever binds a denied interface.
 *
 * File format, one rule per line, first match wins, '#' starts a comment:
 *   default allow|deny
 *   allow|deny CLASS[/SUBCLASS[/PROTOCOL]]     hex bytes, e.g. "deny 03/01/01"
 *   allow|deny NAME                            a named class (below), e.g. "deny hid-keyboard"
 * Without a matching rule the default applies (allow, unless "default deny").
 */
import { ErrorCode, ProtocolError, RuntimeCode, UsbipError } from "./errors.js";
import { Direction } from "./constants.js";
import { contiguous, type RetSubmit } from "./messages.js";
import type { SubmittedUrb } from "./urb-table.js";

export const NAMED_CLASSES: Record<string, [number, number?, number?]> = {
  audio: [0x01],
  cdc: [0x02],
  hid: [0x03],
  "hid-keyboard": [0x03, 0x01, 0x01],
  "hid-mouse": [0x03, 0x01, 0x02],
  printer: [0x07],
  "mass-storage": [0x08],
  hub: [0x09],
  "cdc-data": [0x0a],
  "smart-card": [0x0b],
  video: [0x0e],
  wireless: [0xe0],
  "vendor-specific": [0xff],
};

export interface PolicyRule {
  allow: boolean;
  cls: number;
  sub?: number | undefined;
  proto?: number | undefined;
  text: string;
}

export interface Policy {
  defaultAllow: boolean;
  rules: PolicyRule[];
}

/** A policy text that does not parse: the line and what is wrong with it. */
export class PolicyParseError extends UsbipError {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(RuntimeCode.POLICY_FILE, `line ${line}: ${message}`);
    this.name = "PolicyParseError";
  }
}

/** A short, escaped excerpt of untrusted text for an error line: at most 40 characters, no control bytes. */
export function excerpt(text: string, max = 40): string {
  const json = JSON.stringify(text.length > max ? text.slice(0, max) : text).slice(1, -1);
  return `"${json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)}"${text.length > max ? "..." : ""}`;
}

export function parsePolicy(text: string): Policy {
  if (text.includes("\0")) throw new PolicyParseError(text.slice(0, text.indexOf("\0")).split("\n").length, "the file holds NUL bytes: not a policy text file");
  const policy: Policy = { defaultAllow: true, rules: [] };
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "") return;
    const [verb, arg, ...extra] = line.split(/\s+/);
    if (extra.length > 0 || arg === undefined) throw new PolicyParseError(i + 1, `expected "allow|deny CLASS" or "default allow|deny", got ${excerpt(line)}`);
    if (verb === "default") {
      if (arg !== "allow" && arg !== "deny") throw new PolicyParseError(i + 1, `default must be allow or deny, not ${excerpt(arg)}`);
      policy.defaultAllow = arg === "allow";
      return;
    }
    if (verb !== "allow" && verb !== "deny") throw new PolicyParseError(i + 1, `unknown verb ${excerpt(verb ?? "")} (allow, deny or default)`);
    let parts: Array<number | undefined>;
    if (NAMED_CLASSES[arg] !== undefined) parts = NAMED_CLASSES[arg]!;
    else {
      const m = /^([0-9a-f]{2})(?:\/([0-9a-f]{2})(?:\/([0-9a-f]{2}))?)?$/i.exec(arg);
      if (m === null) throw new PolicyParseError(i + 1, `${excerpt(arg)} is not a class (hex CLASS[/SUBCLASS[/PROTOCOL]] or one of ${Object.keys(NAMED_CLASSES).join(", ")})`);
      parts = [m[1], m[2], m[3]].map((x) => (x === undefined ? undefined : Number.parseInt(x, 16)));
    }
    policy.rules.push({ allow: verb === "allow", cls: parts[0]!, sub: parts[1], proto: parts[2], text: line });
  });
  return policy;
}

export interface InterfaceClass {
  number: number;
  cls: number;
  sub: number;
  proto: number;
}

/** The rule deciding a class triple, or undefined when the default applies. */
export function matchRule(p: Policy, c: { cls: number; sub: number; proto: number }): PolicyRule | undefined {
  return p.rules.find((r) => r.cls === c.cls && (r.sub === undefined || r.sub === c.sub) && (r.proto === undefined || r.proto === c.proto));
}

/** Interface descriptors (bDescriptorType 4) in a configuration descriptor set. */
export function interfacesOf(config: Buffer): InterfaceClass[] {
  const out: InterfaceClass[] = [];
  for (let p = 0; p + 2 <= config.length; ) {
    const len = config[p]!;
    if (len < 2) break;
    if (config[p + 1] === 4 && p + 8 <= config.length) out.push({ number: config[p + 2]!, cls: config[p + 5]!, sub: config[p + 6]!, proto: config[p + 7]! });
    p += len;
  }
  return out;
}

/**
 * Check a descriptor answer: a RET_SUBMIT of GET_DESCRIPTOR(CONFIGURATION) (its payload) or of
 * GET_DESCRIPTOR(DEVICE) (bDeviceClass). Throws POLICY naming the interface and the rule.
 */
export function checkDescriptor(p: Policy, setup: Buffer, data: Buffer, at: number, seqnum: number): void {
  if (setup[0] !== 0x80 || setup[1] !== 6) return;
  const hex = (n: number) => n.toString(16).padStart(2, "0");
  const decide = (c: { cls: number; sub: number; proto: number }, what: string) => {
    const rule = matchRule(p, c);
    const allowed = rule ? rule.allow : p.defaultAllow;
    if (!allowed) {
      throw new ProtocolError(ErrorCode.POLICY, at, `policy refuses ${what} (class ${hex(c.cls)}/${hex(c.sub)}/${hex(c.proto)}) by ${rule ? `rule "${rule.text}"` : "the default"}`, seqnum);
    }
  };
  if (setup[3] === 1 && data.length >= 7 && data[4] !== 0) decide({ cls: data[4]!, sub: data[5]!, proto: data[6]! }, "the device");
  if (setup[3] === 2) for (const i of interfacesOf(data)) decide(i, `interface ${i.number}`);
}

/**
 * The relay's screen for a policy (RelayOptions.screen): every control IN answer with data that
 * a descriptor request got is checked by checkDescriptor before it is forwarded.
 */
export function policyScreen(p: Policy | undefined): ((m: RetSubmit, urb: SubmittedUrb, at: number) => void) | undefined {
  if (p === undefined) return undefined;
  return (m, urb, at) => {
    if (urb.ep === 0 && urb.direction === Direction.IN && urb.setup !== undefined && m.actualLength > 0) checkDescriptor(p, urb.setup, contiguous(m.payload), at, m.seqnum);
  };
}
