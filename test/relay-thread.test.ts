/**
 * The relay on its worker thread (relay/relay-thread.ts) over real socketpairs, and the fd loop
 * under it (shared/fd-loop.ts): the same bytes out as in, both directions; a hostile message
 * refused with its rule and offset and nothing of it forwarded; the backend role's device checks
 * from a sysfs tree; the policy screen; the unlink deadline's timer in the thread; stop; the
 * client hand-over; the fds closed at the end (the peers see EOF). The kernel's side of this is
 * in the VM suite (every relay scenario runs on the thread).
 */
import test from "ava";
import fc from "fast-check";
import net from "node:net";
import { createHash, randomBytes } from "node:crypto";
import { libc } from "../shared/libc.js";
import { FdLoop } from "../shared/fd-loop.js";
import { pauseWhileBacklogged } from "../shared/backpressure.js";
import { RelayThread } from "../relay/relay-thread.js";
import { encodeToBuffer } from "../protocol/encoder.js";
import { ErrorCode } from "../protocol/errors.js";
import type { CmdSubmit, RetSubmit } from "../protocol/messages.js";
import { encodeAll, urbSession } from "./helpers/session.js";
import { addDevice, fakeRoot, put } from "./helpers/fake-sysfs.js";

const FRONTEND = new URL("../frontend/import-relay-thread.js", import.meta.url);
const BACKEND = new URL("../backend/export-relay-thread.js", import.meta.url);

/** A socketpair: one end's fd for the code under test, the other as a net.Socket collecting what arrives. */
function pair(): { fd: number; peer: net.Socket; got: Buffer[]; ended: Promise<void> } {
  const [fd, other] = libc().socketpair();
  const peer = new net.Socket({ fd: other, readable: true, writable: true, allowHalfOpen: true });
  const got: Buffer[] = [];
  peer.on("data", (b: Buffer) => got.push(b));
  // a peer still writing when the relay ends (stop, violation) gets EPIPE: expected here
  peer.on("error", () => {});
  const ended = new Promise<void>((r) => peer.once("end", () => r()));
  return { fd, peer, got, ended };
}

/** the role's data go with start(), as in the product (the export knows its device only then) */
function rig(entry: URL, role: unknown, opts: { unlinkDeadlineMs?: number; unlinkGraceMs?: number } = {}) {
  const client = pair();
  const server = pair();
  const thread = new RelayThread(entry);
  thread.start({ fds: { clientIn: client.fd, clientOut: client.fd, serverIn: server.fd, serverOut: server.fd }, ...opts, role });
  return { client, server, thread };
}

const until = async (what: string, ok: () => boolean) => {
  for (let i = 0; i < 2000 && !ok(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!ok()) throw new Error(`never: ${what}`);
};
const bytes = (bs: Buffer[]) => Buffer.concat(bs);

const IN64: CmdSubmit = { kind: "CMD_SUBMIT", seqnum: 10, devid: 0x10002, direction: 1, ep: 1, transferFlags: 0, transferBufferLength: 64, startFrame: 0, numberOfPackets: 0, interval: 0, setup: Buffer.alloc(8), payload: [] };
const ret = (over: Partial<RetSubmit>): RetSubmit => ({ kind: "RET_SUBMIT", seqnum: 10, devid: 0, direction: 0, ep: 0, status: 0, actualLength: 0, startFrame: 0, numberOfPackets: 0, errorCount: 0, payload: [], ...over });

test("fd loop: 16 MiB through a socketpair with a reader that stalls, byte for byte; the input pauses while the output is backlogged; EOF passed on", async (t) => {
  const a = pair();
  const b = pair();
  const loop = new FdLoop({ idleMs: () => 1 });
  const input = loop.reader(a.fd);
  const output = loop.writer(b.fd);
  let paused = 0;
  input.on("data", (c: Buffer) => {
    output.cork();
    output.write(c);
    output.uncork();
    const before = output.writableLength;
    pauseWhileBacklogged(input, output);
    if (before > 1 << 20) paused++;
  });
  input.on("end", () => output.end());
  input.resume();
  loop.start();
  b.peer.pause(); // the far reader stalls: the writer's backlog grows, the input pauses
  const data = randomBytes(16 << 20);
  a.peer.end(data);
  await until("a backlog", () => output.writableLength > 1 << 20);
  b.peer.resume();
  await b.ended;
  loop.stop();
  t.true(paused > 0, "the input was paused at least once");
  t.is(createHash("sha256").update(bytes(b.got)).digest("hex"), createHash("sha256").update(data).digest("hex"));
  a.peer.destroy();
  b.peer.destroy();
});

test("fd loop: a watched fd is polled only while its owner wants it; ready() gets the revents, and what it settles runs while bytes keep moving through the loop", async (t) => {
  const c = libc();
  const a = pair();
  const b = pair();
  const [w, w2] = c.socketpair();
  const loop = new FdLoop({ idleMs: () => 1 });
  const input = loop.reader(a.fd);
  const output = loop.writer(b.fd);
  input.on("data", (chunk: Buffer) => output.write(chunk));
  input.resume();
  let wanted = false;
  let readies = 0;
  let seen = 0;
  let settle: (() => void) | undefined;
  loop.watch({
    fd: w,
    events: 1 /* POLLIN */,
    wants: () => wanted,
    ready: (revents) => {
      readies++;
      seen |= revents;
      wanted = false; // what an owner does once it has taken what was ready
      settle?.();
    },
  });
  loop.start();
  // the fd is readable from here on, but nobody wants it: never polled, never ready
  new net.Socket({ fd: w2, readable: false, writable: true }).end(Buffer.from("x"));
  // keep the loop busy: a stream of bytes through it the whole time
  let pumping = true;
  const pumpBytes = async () => {
    while (pumping) {
      a.peer.write(randomBytes(64 * 1024));
      await new Promise((r) => setImmediate(r));
    }
  };
  const busy = pumpBytes();
  await new Promise((r) => setTimeout(r, 100));
  t.is(readies, 0, "not wanted: not polled");
  const settled = new Promise<void>((r) => (settle = r));
  wanted = true;
  await settled; // resolved in ready(): its continuation runs although bytes keep coming
  t.is(readies, 1);
  t.is(seen & 1, 1, "POLLIN in the revents");
  pumping = false;
  await busy;
  await new Promise((r) => setTimeout(r, 50));
  t.is(readies, 1, "not wanted again: not polled again");
  loop.stop();
  c.close(w);
  a.peer.destroy();
  b.peer.destroy();
});

test("thread, frontend role: generated valid traffic passes unchanged in both directions", async (t) => {
  const valid = urbSession.map((s) => {
    for (const m of s.server) if (m.kind === "RET_SUBMIT") m.errorCount = Math.min(Math.abs(m.errorCount) % 3, m.numberOfPackets);
    return s;
  });
  await fc.assert(
    fc.asyncProperty(valid, async (s) => {
      const r = rig(FRONTEND, {});
      const c = encodeAll(s.client);
      const sv = encodeAll(s.server);
      r.client.peer.write(c);
      await until("the CMDs forwarded", () => bytes(r.server.got).length >= c.length);
      r.server.peer.write(sv);
      await until("the RETs forwarded", () => bytes(r.client.got).length >= sv.length);
      r.client.peer.end();
      const res = await r.thread.done;
      t.is(res.reason, "client closed");
      t.is(res.violation, undefined, res.violation?.error.message);
      t.true(bytes(r.server.got).equals(c));
      t.true(bytes(r.client.got).equals(sv));
      await r.server.ended; // the thread closed its fds: both peers see the end
      r.client.peer.destroy();
      r.server.peer.destroy();
    }),
    { numRuns: 15 },
  );
});

test("thread: a hostile RET is refused with its rule and offset, nothing of it reaches the client, both sides are cut", async (t) => {
  const r = rig(FRONTEND, {});
  r.client.peer.write(encodeToBuffer(IN64));
  await until("the CMD forwarded", () => r.server.got.length > 0);
  const good = encodeToBuffer(ret({ seqnum: 10, actualLength: 2, payload: [Buffer.from("ok")] }));
  const bad = Buffer.from(good);
  bad.writeUInt32BE(65, 24); // actual_length beyond the 64 submitted (CVE-2016-3955)
  r.server.peer.write(bad);
  let closedBeforeDone = true;
  const res = await r.thread.done.then((x) => {
    // the fds are closed only after the result is in: the kernel's side seeing the close
    // (vhci-hcd releasing the port) can never come first
    closedBeforeDone = r.client.peer.readableEnded;
    return x;
  });
  t.false(closedBeforeDone);
  t.is(res.reason, "violation");
  t.is(res.violation?.from, "server");
  t.is(res.violation?.error.code, ErrorCode.ACTUAL_LENGTH);
  t.is(res.violation?.error.offset, 24, "the byte of actual_length");
  t.is(res.violation?.error.seqnum, 10);
  await r.client.ended;
  t.is(r.client.got.length, 0);
  r.client.peer.destroy();
  r.server.peer.destroy();
});

test("thread, backend role (its device given with start, as the export does): the device's endpoints come from sysfs in the thread; a CMD for an endpoint the device lacks never reaches usbip-host", async (t) => {
  const root = fakeRoot();
  addDevice(root, { busid: "1-1", busnum: 1, devnum: 2, interfaces: [{ cls: "08" }] });
  const ep = "bus/usb/devices/1-1/1-1:1.0/ep_81";
  put(root, `${ep}/bEndpointAddress`, "81\n");
  put(root, `${ep}/type`, "Bulk\n");
  put(root, `${ep}/wMaxPacketSize`, "0200\n");
  const r = rig(BACKEND, { sysfsRoot: root, busid: "1-1", devid: 0x10002 }, { unlinkGraceMs: 100 });
  r.client.peer.write(encodeToBuffer(IN64));
  await until("the CMD forwarded", () => r.server.got.length > 0);
  t.true(bytes(r.server.got).equals(encodeToBuffer(IN64)));
  r.client.peer.write(encodeToBuffer({ ...IN64, seqnum: 11, ep: 5 }));
  const res = await r.thread.done;
  t.is(res.violation?.error.code, ErrorCode.NO_SUCH_ENDPOINT);
  t.is(res.violation?.error.offset, 64, "the second CMD's ep field");
  t.true(bytes(r.server.got).equals(encodeToBuffer(IN64)), "only the first CMD reached the server side");
  r.client.peer.destroy();
  r.server.peer.destroy();
});

test("thread, frontend role: the policy screen runs in the thread (a denied interface class is refused)", async (t) => {
  const r = rig(FRONTEND, { policy: { defaultAllow: true, rules: [{ allow: false, cls: 8, text: "deny 08" }] } });
  const GET_CONFIG: CmdSubmit = { ...IN64, seqnum: 20, ep: 0, setup: Buffer.from("8006000200002000", "hex"), transferBufferLength: 32 };
  r.client.peer.write(encodeToBuffer(GET_CONFIG));
  await until("the CMD forwarded", () => r.server.got.length > 0);
  const config = Buffer.from("09022000010100800009040000020806500000", "hex");
  r.server.peer.write(encodeToBuffer(ret({ seqnum: 20, actualLength: config.length, payload: [config] })));
  const res = await r.thread.done;
  t.is(res.violation?.error.code, ErrorCode.POLICY);
  t.is(r.client.got.length, 0);
  r.client.peer.destroy();
  r.server.peer.destroy();
});

test("thread: the unlink deadline's timer fires in the thread (RET_UNLINK -ECONNRESET to the client); stop ends the relay and closes its fds", async (t) => {
  const r = rig(FRONTEND, {}, { unlinkDeadlineMs: 50 });
  r.client.peer.write(encodeToBuffer(IN64));
  await until("one outstanding", () => r.thread.outstanding === 1);
  r.client.peer.write(encodeToBuffer({ kind: "CMD_UNLINK", seqnum: 11, devid: 0x10002, direction: 0, ep: 0, unlinkSeqnum: 10 }));
  await until("the relay's answer", () => bytes(r.client.got).length >= 48);
  const answer = bytes(r.client.got);
  t.is(answer.readUInt32BE(0), 4, "RET_UNLINK");
  t.is(answer.readUInt32BE(4), 11);
  t.is(answer.readInt32BE(20), -104);
  r.thread.stop();
  const res = await r.thread.done;
  t.is(res.reason, "stopped");
  t.is(res.stats.unlinksTimedOut, 1);
  await Promise.all([r.client.ended, r.server.ended]);
  r.client.peer.destroy();
  r.server.peer.destroy();
});

test("thread: client hand-over — the old client's answers are dropped, its socket closed once the new one is attached; the new client gets its own", async (t) => {
  const r = rig(FRONTEND, {});
  const A: CmdSubmit = { ...IN64, seqnum: 40 };
  r.client.peer.write(encodeToBuffer(A));
  await until("one outstanding", () => r.thread.outstanding === 1);
  const idleBefore = r.thread.clientIdleMs();
  t.true(idleBefore >= 0);
  t.true(await r.thread.detachClient());
  await until("the old URB orphaned", () => r.thread.outstanding === 0);
  const second = pair();
  r.thread.attachClient(second.fd);
  await r.client.ended; // the old socket is closed at the attach
  second.peer.write(encodeToBuffer({ ...A, seqnum: 41 }));
  await until("both submits forwarded", () => bytes(r.server.got).length >= 96);
  const retA = encodeToBuffer(ret({ seqnum: 40, actualLength: 4, payload: [Buffer.alloc(4, 1)] }));
  const retB = encodeToBuffer(ret({ seqnum: 41, actualLength: 4, payload: [Buffer.alloc(4, 2)] }));
  r.server.peer.write(Buffer.concat([retA, retB]));
  await until("the new client's answer", () => bytes(second.got).length >= retB.length);
  t.true(bytes(second.got).equals(retB));
  t.is(r.client.got.length, 0);
  second.peer.end();
  t.is((await r.thread.done).reason, "client closed");
  for (const p of [r.client.peer, r.server.peer, second.peer]) p.destroy();
});

test("thread: cancelled before it started, its done rejects and nothing is left unhandled", async (t) => {
  const thread = new RelayThread(FRONTEND);
  thread.cancel();
  await t.throwsAsync(thread.done, { message: /exited .* before the relay ended/ });
  t.false(await thread.detachClient());
});

test("thread: stopped while the client reads nothing and megabytes wait for it, it still ends (the backlog is dropped after a bound) and closes the server side", async (t) => {
  const r = rig(FRONTEND, {});
  r.client.peer.pause(); // vhci-hcd that stopped reading
  const big: CmdSubmit = { ...IN64, transferBufferLength: 1 << 16 };
  const cmds = Array.from({ length: 64 }, (_, i) => encodeToBuffer({ ...big, seqnum: 100 + i }));
  r.client.peer.write(Buffer.concat(cmds));
  await until("the CMDs forwarded", () => bytes(r.server.got).length >= 64 * 48);
  const payload = Buffer.alloc(1 << 16, 9);
  r.server.peer.write(Buffer.concat(cmds.map((_, i) => encodeToBuffer(ret({ seqnum: 100 + i, actualLength: payload.length, payload: [payload] })))));
  await new Promise((res) => setTimeout(res, 200));
  r.thread.stop();
  const res = await r.thread.done;
  t.is(res.reason, "stopped");
  await r.server.ended;
  r.client.peer.destroy();
  r.server.peer.destroy();
});

test("thread: a socket handed over after the relay ended is closed, not kept (its peer sees the end)", async (t) => {
  const r = rig(FRONTEND, {});
  r.thread.stop();
  t.is((await r.thread.done).reason, "stopped");
  const late = pair();
  r.thread.attachClient(late.fd);
  // the relay has ended: the fd is closed instead of kept (RelayThread.attachClient)
  await late.ended;
  t.true(late.peer.readableEnded);
  for (const p of [r.client.peer, r.server.peer, late.peer]) p.destroy();
});
