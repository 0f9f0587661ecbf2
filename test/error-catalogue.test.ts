/**
 * The error catalogue (protocol/error-codes.ts): every code once, no code spelled out anywhere
 * else in the product, every code documented in docs/ERRORS.md, and the exit status chosen by
 * the error's class.
 */
import test from "ava";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ALL_CODES, GlueCode, RelayCode, RuntimeCode, WireCode } from "../protocol/error-codes.js";
import { formatViolation, HandshakeError, InterruptedError, PeerDataError, ProtocolError, RelayViolationError, UsageError, UsbipError } from "../protocol/errors.js";
import { GlueError } from "../kernel-glue/errors.js";
import { DescriptorError } from "../usb/descriptors.js";
import { PolicyParseError } from "../protocol/policy.js";
import { ExitCode, exitCodeOf } from "../cli/errors.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const PRODUCT = ["protocol", "usb", "device", "host", "relay", "trace", "cli", "kernel-glue", "backend", "frontend", "qrexec", "shared", "fuzz"];

function sources(): string[] {
  return PRODUCT.flatMap((d) => {
    try {
      return readdirSync(path.join(root, d)).filter((f) => f.endsWith(".ts")).map((f) => path.join(d, f));
    } catch {
      return [];
    }
  });
}

test("every code is in exactly one table and has the USBIP_ERR_ form", (t) => {
  t.is(new Set(ALL_CODES).size, ALL_CODES.length, "a code in two tables");
  for (const c of ALL_CODES) t.regex(c, /^USBIP_ERR_[A-Z_]+$/);
  t.is(ALL_CODES.length, [WireCode, RelayCode, GlueCode, RuntimeCode].reduce((n, o) => n + Object.keys(o).length, 0));
});

test("no code is written out as a string outside the catalogue", (t) => {
  const files = sources();
  t.true(files.length > 50, "the product's sources were found");
  const bare = files.filter((f) => !f.endsWith("error-codes.ts")).flatMap((f) => (readFileSync(path.join(root, f), "utf8").match(/["'`]USBIP_ERR_[A-Z_]+["'`]/g) ?? []).map((m) => `${f}: ${m}`));
  t.deepEqual(bare, []);
});

test("docs/ERRORS.md lists every code", (t) => {
  const doc = readFileSync(path.join(root, "docs/ERRORS.md"), "utf8");
  t.deepEqual(ALL_CODES.filter((c) => !doc.includes(`\`${c}\``)), []);
});

test("the exit status follows the error's class", (t) => {
  const v = { code: WireCode.ACTUAL_LENGTH, offset: 344, rule: "actual_length 4096 exceeds 64", seqnum: 1 };
  const cases: [UsbipError, number][] = [
    [new ProtocolError(v.code, v.offset, v.rule, v.seqnum), ExitCode.PROTOCOL],
    [new HandshakeError(3, "bad speed"), ExitCode.PROTOCOL],
    [new RelayViolationError(v, "backend"), ExitCode.PROTOCOL],
    [new PeerDataError(WireCode.UNEXPECTED_OP, "OP_REP_DEVLIST instead of OP_REP_IMPORT"), ExitCode.PROTOCOL],
    [new DescriptorError(9, "bLength 0"), ExitCode.PROTOCOL],
    [new UsageError("bad option"), ExitCode.USAGE],
    [new InterruptedError("SIGINT", "while waiting"), 130],
    [new InterruptedError("SIGTERM", "while waiting"), 143],
    [new GlueError(GlueCode.NO_FREE_PORT, "no free port"), ExitCode.FAILURE],
    [new PolicyParseError(2, "unknown verb"), ExitCode.FAILURE],
    [new UsbipError(RuntimeCode.CLOSED, "closed"), ExitCode.FAILURE],
  ];
  for (const [e, code] of cases) t.is(exitCodeOf(e), code, `${e.name} ${e.code}`);
  t.is(new DescriptorError(9, "x").code, WireCode.DESCRIPTOR);
  t.is(new PolicyParseError(2, "x").code, RuntimeCode.POLICY_FILE);
});

test("one formatter: CODE at byte N (seqnum S): rule", (t) => {
  t.is(formatViolation({ code: "USBIP_ERR_X", offset: 7, rule: "r", seqnum: 3 }), "USBIP_ERR_X at byte 7 (seqnum 3): r");
  t.is(formatViolation({ code: "USBIP_ERR_X", offset: 7, rule: "r" }), "USBIP_ERR_X at byte 7: r");
  const e = new ProtocolError(WireCode.TRUNCATED, 48, "stream ended inside a header", 5);
  t.is(e.message, formatViolation(e));
  const r = new RelayViolationError(e, "backend");
  t.is(r.message, `refused a message from the backend: ${formatViolation(e)}`);
  t.is(new RelayViolationError({ code: RelayCode.POLICY, offset: 0, rule: "class 08 denied" }, "backend").message, "device refused: class 08 denied (USBIP_ERR_POLICY)");
});

test("withPrefix keeps the class, the code and the fields", (t) => {
  const e = new RelayViolationError({ code: WireCode.TRUNCATED, offset: 1, rule: "r" }, "frontend");
  const p = e.withPrefix("export");
  t.true(p instanceof RelayViolationError);
  t.is(p.code, e.code);
  t.is(p.violation, e.violation);
  t.is(p.message, `export: ${e.message}`);
  t.is(exitCodeOf(p), ExitCode.PROTOCOL);
});
