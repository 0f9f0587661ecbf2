/**
 * `import STATEFILE --mode relay`: vhci-hcd gets one end of a socketpair and the relay sits
 * between it and the qrexec link, so every RET_* from the (untrusted) backend is checked against
 * the outstanding CMD_* before the frontend kernel sees it (relay/urb-relay.ts). On a violation:
 * the rule, seqnum and byte offset are logged, the connection is torn down, the port detached,
 * and the exit status is non-zero. Works with the single socket or separate pipes (no SIGUSR1).
 */
import { release } from "node:os";
import type { Readable, Writable } from "node:stream";
import { kernelSupportsSuperPlus, speedFromString, type SpeedString } from "../protocol/speed.js";
import { InterruptedError, UsbipError, RelayViolationError, type Violation, GlueCode } from "../protocol/errors.js";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { attachHandover, attachHandoverFd } from "../kernel-glue/handover.js";
import { withTerminationSignal, type TerminationSignal } from "../qrexec/agent.js";
import { waitNotice, type Logger } from "../shared/log.js";
import { qrexecRemote } from "./import-state.js";
import { runImport, type Attachment } from "./import-lifecycle.js";
import { openLink, relayThreadUsable } from "../qrexec/link.js";
import { RelayThread } from "../relay/relay-thread.js";
import { giveUpReading } from "../shared/stop-reading.js";
import type net from "node:net";
import { readHandshake } from "../qrexec/read-handshake.js";
import { UNLINK_DEADLINE_MS, UrbRelay, type RelayResult } from "../relay/urb-relay.js";
import { FuzzStage, type FuzzStageOptions } from "../relay/fuzz-stage.js";
import type { Mutator } from "../relay/mutator.js";
import { PassThrough } from "node:stream";
import { PcapngTrace } from "../trace/writer.js";
import { policyScreen, type Policy } from "../protocol/policy.js";
import type { Handshake } from "../protocol/messages.js";

export interface ImportRelayOptions {
  statefile: string;
  log: Logger;
  sysfs?: Sysfs;
  handshakeTimeoutMs?: number;
  attachTimeoutMs?: number;
  /** write every URB to this pcapng file (usbmon events) */
  trace?: string;
  /** allow/deny by interface class (protocol/policy.ts) */
  policy?: Policy;
  /** an already opened link (connect --tcp): its streams and the device it carries */
  link?: { input: Readable; output: Writable; devid: number; speed: SpeedString; rest: Buffer };
  /** who is on the other side, for 'usbip-qrexec port' (default: the qrexec remote) */
  remote?: { remote: string; busid: string };
  /** called once the device enumerated */
  onAttached?: (port: number) => void;
  /** the termination signal of the caller (one is made otherwise) */
  signal?: TerminationSignal;
  /** --fuzz: mutate the backend's RET_* on their way to vhci-hcd; validate: false sends them on unchecked */
  fuzz?: { mutator: Mutator; validate: boolean };
}

export async function importRelay(opts: ImportRelayOptions): Promise<number> {
  const sysfs = opts.sysfs ?? new Sysfs();
  const log = opts.log;
  return withTerminationSignal((signal) => importRelayUntilSignal(opts, sysfs, log, signal), opts.signal);
}

async function importRelayUntilSignal(opts: ImportRelayOptions, sysfs: Sysfs, log: Logger, signal: TerminationSignal): Promise<number> {
  // a trace that cannot be written is refused before anything is attached
  const trace = opts.trace === undefined ? undefined : PcapngTrace.open(opts.trace, (e) => log.warn(`trace ${opts.trace}: ${e.message}; tracing stopped, the relay goes on`));
  try {
    return await importRelayTraced(opts, sysfs, log, signal, trace);
  } finally {
    await trace?.close().catch(() => {});
  }
}

async function importRelayTraced(opts: ImportRelayOptions, sysfs: Sysfs, log: Logger, signal: TerminationSignal, trace: PcapngTrace | undefined): Promise<number> {
  // the relay's own thread when nothing needs the event loop's streams (a trace file, the
  // fuzzing stage, a TCP link) and the link's fds can be polled
  if (!opts.link && !trace && !opts.fuzz && relayThreadUsable()) return importRelayThreaded(opts, sysfs, log, signal);
  const link = opts.link ?? openLink();
  const { hs, rest, speed } = opts.link ? linkHandshake({ devid: opts.link.devid, speed: opts.link.speed }, opts.link.rest, log) : await awaitHandshake(link, opts, log, signal);
  const policy = opts.policy;
  const fuzz = opts.fuzz;
  return runImport({ statefile: opts.statefile, log, sysfs, mode: "relay", remote: opts.remote ?? qrexecRemote(opts.statefile), signal, attachTimeoutMs: opts.attachTimeoutMs, onAttached: opts.onAttached }, async (vhci, after) => {
    const first = await attachHandover(vhci, hs.devid, speed, after);
    if (fuzz && !fuzz.validate) return fuzzUnvalidated(first, link, rest, fuzz.mutator, log, signal, trace);
    let socket = first.socket;
    // --fuzz: the backend's RETs pass the fuzzing stage first, then the relay checks what it made
    let server: { input: Readable; output: Writable; prefix: Buffer } = { input: link.input, output: link.output, prefix: rest };
    let stage: FuzzStage | undefined;
    if (fuzz) {
      const toRelay = new PassThrough();
      const fromRelay = new PassThrough();
      stage = new FuzzStage({ mutate: "server", clientIn: fromRelay, clientOut: toRelay, serverIn: link.input, serverOut: link.output, serverPrefix: rest, mutator: fuzz.mutator });
      stage.start();
      server = { input: toRelay, output: fromRelay, prefix: Buffer.alloc(0) };
    }
    const relay = new UrbRelay({
      clientIn: socket,
      clientOut: socket,
      serverIn: server.input,
      serverOut: server.output,
      serverPrefix: server.prefix,
      unlinkDeadlineMs: UNLINK_DEADLINE_MS,
      onMessage: trace && ((_f, m, urb) => trace.record(m, { urb })),
      screen: policyScreen(policy),
    });
    relay.start();
    // said however the import ends (before the device enumerated too)
    if (stage) void Promise.all([stage.done, relay.done]).then(([f, r]) => log.warn(`fuzz: ${f.messages} messages, ${f.mutated} mutated; the relay ${r.violation ? "stopped one" : "let all through"}`));
    return relayAttachment(relay, first.port, signal, log, {
      detachClient: () => relay.detachClient(),
      attachClient: async (from) => {
        vhci.release(from);
        socket.destroy();
        const next = await attachHandover(vhci, hs.devid, speed, from);
        socket = next.socket;
        relay.attachClient(socket, socket);
        return next.port;
      },
      onEnd: () => stage?.stop(),
    });
  });
}

/** The relay as import-lifecycle.ts sees it, on the event loop (UrbRelay) or on its thread (RelayThread). */
interface RelayPump {
  readonly done: Promise<RelayResult>;
  stop(): void;
  readonly outstanding: number;
  clientIdleMs(): number;
}

/**
 * The attachment of a relay: it owns the link and ends when either side closes, on a violation,
 * or on a signal; a port that never enumerates (vhci-hcd quiet, nothing outstanding) is moved:
 * `client.detachClient` lets the old socket go, `client.attachClient(from)` releases port `from`
 * and gives the relay a socket on another port.
 */
function relayAttachment(relay: RelayPump, port: number, signal: TerminationSignal, log: Logger, client: { detachClient(): boolean | Promise<boolean>; attachClient(from: number): Promise<number>; onEnd?: () => void }): Attachment {
  const ends = endings(signal, relay, (r) => relayError(r.violation?.error));
  let violation: RelayViolationError | undefined;
  const attachment: Attachment = {
    port,
    how: " through the relay",
    endedEarly: ends.endedEarly,
    untilEnd: async () => {
      const r = await relay.done;
      log.info(`relay ended (${r.reason}): ${JSON.stringify(r.stats)}, ${relay.outstanding} outstanding`);
      client.onEnd?.();
      violation = relayError(r.violation?.error);
      return ends.stoppedBy() ? `signal ${ends.stoppedBy()}` : `link ${r.reason}`;
    },
    afterRelease: () => {
      if (violation) throw violation;
    },
    abort: () => relay.stop(),
    // a port that never enumerates: vhci-hcd quiet, nothing outstanding (import-lifecycle.ts)
    move: {
      quietMs: () => (relay.outstanding === 0 ? relay.clientIdleMs() : 0),
      toAnotherPort: async () => {
        const from = attachment.port;
        if (!(await client.detachClient())) throw new UsbipError(GlueCode.ATTACH, `vhci port ${from} did not enumerate the device and the relay cannot move it now`);
        return client.attachClient(from);
      },
    },
  };
  return attachment;
}

/** The backend's handshake line from the link (with a notice while it is awaited), and what came after it. */
async function awaitHandshake(link: { input: Readable }, opts: ImportRelayOptions, log: Logger, signal: TerminationSignal): Promise<{ hs: Pick<Handshake, "devid" | "speed">; rest: Buffer; speed: number }> {
  const handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 60_000;
  const notice = waitNotice(log, `waiting for the backend's handshake line (gives up after ${handshakeTimeoutMs / 1000} s)`);
  const { handshake, rest } = await readHandshake(link.input, handshakeTimeoutMs, signal.promise).finally(notice);
  return linkHandshake(handshake, rest, log);
}

/** The vhci-hcd speed a handshake announces on this kernel, logged. */
function linkHandshake(hs: Pick<Handshake, "devid" | "speed">, rest: Buffer, log: Logger): { hs: Pick<Handshake, "devid" | "speed">; rest: Buffer; speed: number } {
  const speed = speedFromString(hs.speed as SpeedString, kernelSupportsSuperPlus(release()));
  log.info(`handshake: devid ${hs.devid} speed ${hs.speed} (enum ${speed})`);
  return { hs, rest, speed };
}

/**
 * The relay on its own thread (relay/relay-thread.ts) over fd 0, fd 1 and vhci-hcd's socket:
 * the same checks, the same port move, the bytes moved by a poll() loop. The thread is started
 * before the handshake, so its modules load meanwhile.
 */
async function importRelayThreaded(opts: ImportRelayOptions, sysfs: Sysfs, log: Logger, signal: TerminationSignal): Promise<number> {
  const thread = new RelayThread(new URL("../frontend/import-relay-thread.js", import.meta.url));
  let started = false;
  try {
    const link = openLink();
    const { hs, rest, speed } = await awaitHandshake(link, opts, log, signal);
    // fd 0 is the thread's from now on: Node stops reading it, and what it read past the line goes first
    giveUpReading(link.input as net.Socket);
    const prefix: Buffer[] = [rest];
    for (let c = link.input.read() as Buffer | null; c !== null; c = link.input.read() as Buffer | null) prefix.push(c);
    return await runImport({ statefile: opts.statefile, log, sysfs, mode: "relay", remote: opts.remote ?? qrexecRemote(opts.statefile), signal, attachTimeoutMs: opts.attachTimeoutMs, onAttached: opts.onAttached }, async (vhci, after) => {
      const first = await attachHandoverFd(vhci, hs.devid, speed, after);
      thread.start({ fds: { clientIn: first.fd, clientOut: first.fd, serverIn: 0, serverOut: 1 }, serverPrefix: Buffer.concat(prefix), unlinkDeadlineMs: UNLINK_DEADLINE_MS, role: { policy: opts.policy } });
      started = true;
      return relayAttachment(thread, first.port, signal, log, {
        detachClient: () => thread.detachClient(),
        attachClient: async (from) => {
          vhci.release(from);
          const next = await attachHandoverFd(vhci, hs.devid, speed, from);
          thread.attachClient(next.fd);
          return next.port;
        },
      });
    });
  } finally {
    if (!started) thread.cancel();
  }
}

/**
 * --fuzz --no-validate: the fuzzing stage alone between vhci-hcd and the link, so the mutated
 * RETs reach the kernel unchecked (to find what the kernel does with them; nothing protects it).
 * No policy or port move: those are the relay's. `trace`: what vhci-hcd got, as the stage sent it.
 */
function fuzzUnvalidated(first: { port: number; socket: import("node:net").Socket }, link: { input: Readable; output: Writable }, rest: Buffer, mutator: Mutator, log: Logger, signal: TerminationSignal, trace: PcapngTrace | undefined): Attachment {
  const onSent: FuzzStageOptions["onSent"] = trace && ((m, { urb, comment }) => trace.record(m, { urb, comment }));
  const stage = new FuzzStage({ mutate: "server", clientIn: first.socket, clientOut: first.socket, serverIn: link.input, serverOut: link.output, serverPrefix: rest, mutator, onSent });
  stage.start();
  // said however the import ends (before the device enumerated too)
  void stage.done.then((r) => log.warn(`fuzz: ${r.messages} messages, ${r.mutated} mutated, none validated (${r.reason}${r.error ? `: ${r.error.message}` : ""})`));
  const ends = endings(signal, stage, () => undefined);
  return {
    port: first.port,
    how: " through the fuzzing stage (not validated)",
    endedEarly: ends.endedEarly,
    untilEnd: async () => {
      const r = await stage.done;
      return ends.stoppedBy() ? `signal ${ends.stoppedBy()}` : `link ${r.reason}`;
    },
    afterRelease: () => {},
    abort: () => stage.stop(),
    move: { quietMs: () => 0, toAnotherPort: async () => first.port },
  };
}

/**
 * What ends a link's pump (the relay or the fuzzing stage) before the device enumerated: a
 * termination signal (which stops it), its own end, or what `why` makes of its result.
 */
function endings<R extends { reason: string }>(signal: TerminationSignal, pump: { stop(): void; done: Promise<R> }, why: (r: R) => Error | undefined): { stoppedBy: () => NodeJS.Signals | undefined; endedEarly: Promise<never> } {
  let stoppedBy: NodeJS.Signals | undefined;
  signal.promise.then((s) => {
    stoppedBy = s;
    pump.stop();
  }, () => {});
  const endedEarly = pump.done.then((r): never => {
    if (stoppedBy !== undefined) throw new InterruptedError(stoppedBy, "before the device enumerated");
    throw why(r) ?? new UsbipError(GlueCode.ATTACH, `the connection ended (${r.reason}) before the device enumerated`);
  });
  endedEarly.catch(() => {});
  return { stoppedBy: () => stoppedBy, endedEarly };
}

function relayError(e: Violation | undefined): RelayViolationError | undefined {
  return e === undefined ? undefined : new RelayViolationError(e, "backend");
}

