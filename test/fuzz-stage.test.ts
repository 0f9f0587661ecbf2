/**
 * relay/fuzz-stage.ts in process: the stage frames both directions, passes the mutated side
 * through the Mutator and the other byte for byte; in front of the validating relay (fuzz
 * first, validate after) the relay stops what breaks a rule, and the stage ends with it. And
 * the CLI's --fuzz / --no-validate usage rules.
 */
import test from "ava";
import { PassThrough } from "node:stream";
import { encode } from "../protocol/encoder.js";
import type { ClientMessage, CmdSubmit, RetSubmit, ServerMessage } from "../protocol/messages.js";
import type { SubmittedUrb } from "../protocol/urb-table.js";
import { FuzzStage } from "../relay/fuzz-stage.js";
import { formatMutation, Mutator, parseFuzzSpec } from "../relay/mutator.js";
import { UrbRelay } from "../relay/urb-relay.js";
import { runCli } from "./helpers/cli.js";

const cmd = (seqnum: number): CmdSubmit => ({ kind: "CMD_SUBMIT", seqnum, devid: 0x10002, direction: 1, ep: 0, transferFlags: 0x200, transferBufferLength: 18, startFrame: 0, numberOfPackets: 0, interval: 0, setup: Buffer.from([0x80, 6, 0, 1, 0, 0, 18, 0]), payload: [] });
const ret = (seqnum: number): RetSubmit => ({ kind: "RET_SUBMIT", seqnum, devid: 0, direction: 0, ep: 0, status: 0, actualLength: 18, startFrame: 0, numberOfPackets: 0, errorCount: 0, payload: [Buffer.from([18, 1, 0, 2, 0, 0, 0, 64, 0x6b, 0x1d, 4, 1, 0, 1, 1, 2, 3, 1])] });
const bytes = (m: CmdSubmit | RetSubmit) => Buffer.concat(encode(m));

function collect(s: PassThrough): () => Buffer {
  const got: Buffer[] = [];
  s.on("data", (b: Buffer) => got.push(b));
  return () => Buffer.concat(got);
}
const tick = () => new Promise((r) => setTimeout(r, 20));

function stageWith(spec: string, mutate: "server" | "client") {
  const s = { clientIn: new PassThrough(), clientOut: new PassThrough(), serverIn: new PassThrough(), serverOut: new PassThrough() };
  const mutator = new Mutator(parseFuzzSpec(spec));
  const stage = new FuzzStage({ mutate, ...s, mutator });
  stage.start();
  return { ...s, stage, mutator, toClient: collect(s.clientOut), toServer: collect(s.serverOut) };
}

test("rate 0: both directions pass byte for byte, split anywhere", async (t) => {
  const f = stageWith("1,rate=0", "server");
  const c = Buffer.concat([bytes(cmd(1)), bytes(cmd(2))]);
  const r = Buffer.concat([bytes(ret(1)), bytes(ret(2))]);
  for (let i = 0; i < c.length; i += 7) f.clientIn.write(c.subarray(i, i + 7));
  await tick();
  for (let i = 0; i < r.length; i += 5) f.serverIn.write(r.subarray(i, i + 5));
  await tick();
  t.deepEqual(f.toServer(), c);
  t.deepEqual(f.toClient(), r);
  f.serverIn.end();
  t.like(await f.stage.done, { reason: "server closed", messages: 2, mutated: 0 });
});

test("frontend role: RETs toward the client are mutated as logged, CMDs pass untouched", async (t) => {
  const f = stageWith("9,rate=1,fields=status", "server");
  f.clientIn.write(bytes(cmd(1)));
  await tick();
  f.serverIn.write(bytes(ret(1)));
  await tick();
  t.deepEqual(f.toServer(), bytes(cmd(1)));
  const got = f.toClient();
  t.is(f.mutator.log.length, 1);
  const m = f.mutator.log[0]!;
  t.like(m, { n: 0, seqnum: 1, field: "status", from: "0x0" });
  t.is(`0x${got.readUInt32BE(20).toString(16)}`, m.to);
  t.deepEqual(Buffer.concat([got.subarray(0, 20), got.subarray(24)]), Buffer.concat([bytes(ret(1)).subarray(0, 20), bytes(ret(1)).subarray(24)]));
  f.stage.stop();
});

test("backend role: CMDs toward the server are mutated, RETs pass raw", async (t) => {
  const f = stageWith("4,rate=1,fields=ep", "client");
  f.clientIn.write(bytes(cmd(1)));
  await tick();
  f.serverIn.write(bytes(ret(1)));
  await tick();
  t.deepEqual(f.toClient(), bytes(ret(1)));
  t.is(f.mutator.log.length, 1);
  t.is(`0x${f.toServer().readUInt32BE(16).toString(16)}`, f.mutator.log[0]!.to);
  f.stage.stop();
});

test("fuzz first, validate after: the relay refuses the mutated RET (unknown seqnum), nothing reaches the client, the stage ends with the relay", async (t) => {
  const vhciIn = new PassThrough();
  const vhciOut = new PassThrough();
  const toVhci = collect(vhciOut);
  const link = { in: new PassThrough(), out: new PassThrough() };
  const toBackend = collect(link.out);
  const toRelay = new PassThrough();
  const fromRelay = new PassThrough();
  const mutator = new Mutator(parseFuzzSpec("3,rate=1,fields=seqnum"));
  const stage = new FuzzStage({ mutate: "server", clientIn: fromRelay, clientOut: toRelay, serverIn: link.in, serverOut: link.out, mutator });
  const relay = new UrbRelay({ clientIn: vhciIn, clientOut: vhciOut, serverIn: toRelay, serverOut: fromRelay });
  stage.start();
  relay.start();
  vhciIn.write(bytes(cmd(1)));
  await tick();
  t.deepEqual(toBackend(), bytes(cmd(1)), "the CMD went through relay and stage");
  link.in.write(bytes(ret(1)));
  const r = await relay.done;
  t.is(r.reason, "violation");
  t.regex(r.violation!.error.code, /USBIP_ERR_UNKNOWN_SEQNUM/);
  t.is(toVhci().length, 0, "the mutated RET reached the client");
  t.like(await stage.done, { messages: 1, mutated: 1 });
});

test("CLI (import and export): --fuzz needs relay mode, --no-validate needs --fuzz and no --policy, a bad SPEC is one usage line", async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [["import", "st", "--fuzz", "1"], /--fuzz needs --mode relay/],
    [["import", "st", "--mode", "relay", "--no-validate"], /--no-validate goes with --fuzz only/],
    [["import", "st", "--mode", "relay", "--fuzz", "1", "--no-validate", "--policy", "p.json"], /--no-validate has no relay: no --policy/],
    [["import", "st", "--mode", "relay", "--fuzz", "1,rate=7"], /--fuzz: rate must be 0\.\.1, not "7"/],
    [["import", "st", "--mode", "relay", "--fuzz", "1,fields=nope"], /--fuzz: unknown field nope/],
    [["export", "2-1", "--fuzz", "1"], /export: --fuzz needs --mode relay/],
    [["export", "2-1", "--mode", "relay", "--no-validate"], /export: --no-validate goes with --fuzz only/],
    [["export", "--virtual", "hid-keyboard", "--fuzz", "1"], /--fuzz is not available with --virtual/],
    [["export", "2-1", "--mode", "relay", "--fuzz", "x"], /--fuzz: the seed must be a number/],
  ];
  for (const [args, says] of cases) {
    const r = await runCli(args);
    t.is(r.code, 64, `${args.join(" ")}: ${r.stderr}`);
    t.regex(r.stderr, says);
    t.is(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
});

test("inputs paused before the stage starts (the link after its handshake) flow once it starts", async (t) => {
  const s = { clientIn: new PassThrough(), clientOut: new PassThrough(), serverIn: new PassThrough(), serverOut: new PassThrough() };
  s.clientIn.pause();
  s.serverIn.pause();
  const toServer = collect(s.serverOut);
  const toClient = collect(s.clientOut);
  const stage = new FuzzStage({ mutate: "server", ...s, mutator: new Mutator(parseFuzzSpec("1,rate=0")) });
  stage.start();
  s.clientIn.write(bytes(cmd(1)));
  await tick();
  s.serverIn.write(bytes(ret(1)));
  await tick();
  t.deepEqual(toServer(), bytes(cmd(1)));
  t.deepEqual(toClient(), bytes(ret(1)));
  stage.stop();
});

function tracedStage(spec: string, mutate: "server" | "client") {
  const s = { clientIn: new PassThrough(), clientOut: new PassThrough(), serverIn: new PassThrough(), serverOut: new PassThrough() };
  const traced: Array<{ m: ClientMessage | ServerMessage; urb?: SubmittedUrb | undefined; comment?: string | undefined }> = [];
  const mutator = new Mutator(parseFuzzSpec(spec));
  const stage = new FuzzStage({ mutate, ...s, mutator, onSent: (m, o) => traced.push({ m, ...o }) });
  stage.start();
  return { ...s, stage, mutator, traced };
}

test("tracing, frontend role: the CMDs as vhci sent them, each RET as it was sent to vhci, its mutation as the comment", async (t) => {
  const f = tracedStage("9,rate=1,fields=status", "server");
  f.clientIn.write(bytes(cmd(1)));
  await tick();
  f.serverIn.write(bytes(ret(1)));
  await tick();
  t.is(f.traced.length, 2);
  t.like(f.traced[0]!, { m: { kind: "CMD_SUBMIT", seqnum: 1 }, comment: undefined });
  const mutation = f.mutator.log[0]!;
  const sent = f.traced[1]!;
  t.like(sent.m, { kind: "RET_SUBMIT", seqnum: 1, actualLength: 18 });
  t.is(`0x${((sent.m as RetSubmit).status >>> 0).toString(16)}`, mutation.to, "the status the kernel got, not the backend's");
  t.is(sent.comment, formatMutation(mutation));
  t.like(sent.urb, { seqnum: 1, direction: 1, ep: 0 });
  f.stage.stop();
});

test("tracing, backend role: each CMD as usbip-host got it, and its answers framed by what it got (a duplicated CMD answered twice)", async (t) => {
  const f = tracedStage("5,rate=1,fields=duplicate", "client");
  f.clientIn.write(bytes(cmd(1)));
  await tick();
  t.is(f.mutator.log.length, 1);
  t.is(f.traced.length, 2, "both copies traced");
  for (const x of f.traced) t.like(x, { m: { kind: "CMD_SUBMIT", seqnum: 1 }, comment: formatMutation(f.mutator.log[0]!) });
  // usbip-host answers each copy
  f.serverIn.write(Buffer.concat([bytes(ret(1)), bytes(ret(1))]));
  await tick();
  t.is(f.traced.length, 4);
  for (const x of f.traced.slice(2)) t.like(x, { m: { kind: "RET_SUBMIT", seqnum: 1, actualLength: 18 }, urb: { seqnum: 1, direction: 1 }, comment: undefined });
  // an answer to nothing that was sent stops the tracing of answers, not the stage
  f.serverIn.write(bytes(ret(77)));
  await tick();
  t.is(f.traced.length, 4);
  f.stage.stop();
  t.regex((await f.stage.done).untraced ?? "", /answers are not traced after this: .*seqnum 77/);
});

test("tracing, backend role: a mutated word is traced as sent (ep), the answer to the CMD as usbip-host got it", async (t) => {
  const f = tracedStage("4,rate=1,fields=ep", "client");
  f.clientIn.write(bytes(cmd(1)));
  await tick();
  const to = Number(f.mutator.log[0]!.to);
  t.is(f.traced[0]!.m.kind, "CMD_SUBMIT");
  t.is((f.traced[0]!.m as CmdSubmit).ep, to);
  t.is(f.traced[0]!.comment, formatMutation(f.mutator.log[0]!));
  f.serverIn.write(bytes(ret(1)));
  await tick();
  t.like(f.traced[1]!, { m: { kind: "RET_SUBMIT", seqnum: 1 }, urb: { seqnum: 1, ep: to } });
  f.stage.stop();
});
