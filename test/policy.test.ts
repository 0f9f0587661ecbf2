/** Device policy: the file format, descriptor walking, and refusal of the configuration in the relay. */
import test from "ava";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { checkDescriptor, interfacesOf, parsePolicy } from "../protocol/policy.js";
import { ErrorCode } from "../protocol/errors.js";
import { encodeToBuffer } from "../protocol/encoder.js";
import { contiguous, type CmdSubmit } from "../protocol/messages.js";
import { UrbRelay } from "../relay/urb-relay.js";
import { runCli } from "./helpers/cli.js";

// the gadget's configuration descriptor set: config + one mass-storage interface (08/06/50) + 2 bulk endpoints
const CONFIG = Buffer.from("09022000010100c0010904000002080650000705810200020007050202000200", "hex");
const GET_CONFIG = Buffer.from("8006000200002000", "hex");

test("parse: defaults, hex classes, named classes, comments; errors name the line", (t) => {
  const p = parsePolicy("# mine\ndefault deny\nallow mass-storage\ndeny 03/01/01  # keyboards\nallow 03\n");
  t.false(p.defaultAllow);
  t.deepEqual(p.rules.map((r) => [r.allow, r.cls, r.sub, r.proto]), [[true, 8, undefined, undefined], [false, 3, 1, 1], [true, 3, undefined, undefined]]);
  t.throws(() => parsePolicy("allow\n"), { message: /^line 1:/ });
  t.throws(() => parsePolicy("\n\npermit 08\n"), { message: /^line 3: unknown verb "permit"/ });
  t.throws(() => parsePolicy("deny 3\n"), { message: /is not a class/ });
  t.throws(() => parsePolicy("default maybe\n"), { message: /default must be allow or deny/ });
});

test("interfacesOf walks a configuration descriptor set", (t) => {
  t.deepEqual(interfacesOf(CONFIG), [{ number: 0, cls: 8, sub: 6, proto: 0x50 }]);
  t.deepEqual(interfacesOf(Buffer.from([0, 2, 3])), [], "a zero bLength stops the walk");
});

test("checkDescriptor: first matching rule wins, then the default; names the interface and rule", (t) => {
  t.notThrows(() => checkDescriptor(parsePolicy("deny hid-keyboard\n"), GET_CONFIG, CONFIG, 0, 1));
  const e = t.throws(() => checkDescriptor(parsePolicy("allow hid\ndeny mass-storage\n"), GET_CONFIG, CONFIG, 100, 7));
  t.is((e as { code?: string }).code, ErrorCode.POLICY);
  t.regex(e!.message, /interface 0 \(class 08\/06\/50\) by rule "deny mass-storage"/);
  t.throws(() => checkDescriptor(parsePolicy("default deny\nallow hid\n"), GET_CONFIG, CONFIG, 0, 1), { message: /by the default/ });
  t.notThrows(() => checkDescriptor(parsePolicy("deny mass-storage\n"), Buffer.from("8006000100001200", "hex"), Buffer.alloc(18), 0, 1), "a device descriptor with class 0 defers to the interfaces");
});

test("in the relay: the configuration answer of a denied device never reaches the kernel", async (t) => {
  const clientIn = new PassThrough();
  const clientOut = new PassThrough();
  const serverIn = new PassThrough();
  const serverOut = new PassThrough();
  const toClient: Buffer[] = [];
  clientOut.on("data", (b: Buffer) => toClient.push(b));
  serverOut.resume();
  const policy = parsePolicy("deny mass-storage\n");
  const relay = new UrbRelay({
    clientIn, clientOut, serverIn, serverOut,
    screen: (m, urb, at) => {
      if (urb.ep === 0 && urb.setup) checkDescriptor(policy, urb.setup, contiguous(m.payload), at, m.seqnum);
    },
  });
  relay.start();
  const cmd: CmdSubmit = { kind: "CMD_SUBMIT", seqnum: 5, devid: 1, direction: 1, ep: 0, transferFlags: 0x200, transferBufferLength: 32, startFrame: 0, numberOfPackets: 0, interval: 0, setup: GET_CONFIG, payload: [] };
  clientIn.write(encodeToBuffer(cmd));
  await new Promise((r) => setImmediate(r));
  serverIn.write(encodeToBuffer({ kind: "RET_SUBMIT", seqnum: 5, devid: 0, direction: 0, ep: 0, status: 0, actualLength: 32, startFrame: 0, numberOfPackets: 0, errorCount: 0, payload: [CONFIG] }));
  const r = await relay.done;
  t.is(r.violation?.error.code, ErrorCode.POLICY);
  t.is(Buffer.concat(toClient).length, 0);
});

test("import --policy: an unreadable or malformed policy is a one-line error before anything starts", async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), "policy-"));
  const bad = path.join(dir, "bad");
  writeFileSync(bad, "allow 08\nblock 03\n");
  const r = await runCli(["import", "s", "--mode", "relay", "--policy", bad]);
  t.is(r.code, 64);
  t.regex(r.stderr, /policy .*bad: line 2: unknown verb "block"/);
  const m = await runCli(["import", "s", "--mode", "relay", "--policy", path.join(dir, "missing")]);
  t.is(m.code, 1);
  t.regex(m.stderr, /cannot read the policy/);
  const k = await runCli(["import", "s", "--policy", bad]);
  t.regex(k.stderr, /--policy needs --mode relay/);
});
