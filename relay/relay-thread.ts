/**
 * The validating relay on a worker thread, its bytes moved by a poll() loop (shared/fd-loop.ts)
 * instead of libuv's streams: the same UrbRelay, every message checked before it is forwarded,
 * on raw fds (the kernel's socketpair end, the qrexec link's fd 0 and fd 1). The main thread
 * keeps the control: start, stop, the client hand-over, the counters the importer polls.
 *
 * The worker is started before the fds exist (`prepare`), so its module loading overlaps the
 * handshake and the attach; `start` gives it the fds, which then belong to it: it closes them
 * when the relay ends. Each message to the worker is followed by a write to an eventfd the
 * worker's poll() watches, so a stop or a hand-over is seen within one poll, however busy.
 * The role (frontend: the policy screen; backend: the device's endpoints from sysfs) is built
 * in the worker by the role's entry module, from plain data.
 *
 * Main → worker: {t: "start"}, {t: "stop"}, {t: "detach"}, {t: "attach", fd}, {t: "close"}.
 * Worker → main: {t: "detached", ok}, {t: "done", result} — or an uncaught error (the worker's "error").
 * The worker closes the fds on "close", which the main thread sends once it has taken "done" in:
 * so the end's cause (a violation, a stop) is known before a kernel sees the sockets close —
 * as with the relay on the event loop, whose result is settled before its sockets close.
 */
import { closeSync, writeSync } from "node:fs";
import { parentPort, Worker, workerData } from "node:worker_threads";
import { ProtocolError, type PeerDataErrorCode } from "../protocol/errors.js";
import { libc } from "../shared/libc.js";
import { FdLoop } from "../shared/fd-loop.js";
import { IdleClock } from "./idle-clock.js";
import { UrbRelay, type RelayEnd, type RelayOptions, type RelayResult } from "./urb-relay.js";

/** The fds a relay thread moves bytes between: the client side is one socket (vhci-hcd's end, or the link in the backend role when it is one socket). */
export interface RelayThreadFds {
  clientIn: number;
  clientOut: number;
  serverIn: number;
  serverOut: number;
}

export interface RelayThreadStart {
  fds: RelayThreadFds;
  /** bytes already read from the server side (after the handshake line) */
  serverPrefix?: Uint8Array;
  unlinkGraceMs?: number;
  unlinkDeadlineMs?: number;
  /** the role's data (the entry module builds the role's parts from it in the worker) */
  role: unknown;
}

/** What the role's entry builds in the worker, from the role data. */
export type RoleParts = Pick<RelayOptions, "device" | "screen" | "onMessage">;

type ToWorker = ({ t: "start" } & RelayThreadStart) | { t: "stop" } | { t: "detach" } | { t: "attach"; fd: number } | { t: "close" };
type WireViolation = { from: RelayEnd; code: PeerDataErrorCode; offset: number; rule: string; seqnum: number | undefined };
type FromWorker = { t: "detached"; ok: boolean } | { t: "done"; result: Omit<RelayResult, "violation"> & { violation?: WireViolation } };

/** state shared with the worker: Int32 [0] URBs outstanding for the current client, [1] the client's chunks so far */
const OUTSTANDING = 0;
const CLIENT_CHUNKS = 1;
/** how long an orderly end waits for the backlog to be written before the fds are closed anyway */
const FLUSH_MS = 2000;

export class RelayThread {
  private readonly worker: Worker;
  private readonly wakeFd: number;
  private readonly state = new Int32Array(new SharedArrayBuffer(8));
  private readonly clientClock = new IdleClock();
  private detachAnswer: ((ok: boolean) => void) | undefined;
  private ended = false;
  private exited = false;
  readonly done: Promise<RelayResult>;

  /**
   * Start the worker (`entry`: the role's module, which calls serveRelayThread); the role's data
   * come with start(), so the thread can be made before they are known: the sooner it is made,
   * the more of its start overlaps the caller's own preparations.
   */
  constructor(entry: URL) {
    this.wakeFd = libc().eventfd();
    this.worker = new Worker(entry, { workerData: { wakeFd: this.wakeFd, state: this.state.buffer } });
    this.done = new Promise<RelayResult>((resolve, reject) => {
      this.worker.on("message", (m: FromWorker) => {
        if (m.t === "detached") this.detachAnswer?.(m.ok);
        else if (m.t === "done") {
          this.ended = true;
          const v = m.result.violation;
          resolve({ ...m.result, violation: v && { from: v.from, error: new ProtocolError(v.code, v.offset, v.rule, v.seqnum) } });
          // the fds are closed only now, after what awaits `done` has seen the result: the
          // kernel's side noticing the close (vhci-hcd releasing the port) must not be taken
          // for the cause of the end
          setImmediate(() => this.post({ t: "close" }));
        }
      });
      this.worker.on("error", (e) => reject(e));
      this.worker.on("exit", (code) => {
        // the worker polled the wake fd until now
        this.exited = true;
        closeSync(this.wakeFd);
        reject(new Error(`the relay thread exited (${code}) before the relay ended`));
      });
    });
    // a thread cancelled before it started is awaited by no one
    this.done.catch(() => {});
  }

  /** Hand the fds over (they are the worker's from now on) and start relaying. */
  start(s: RelayThreadStart): void {
    this.post({ t: "start", ...s });
  }

  stop(): void {
    if (!this.ended) this.post({ t: "stop" });
  }

  /** URBs (submits and unlinks) the current client is waiting for. */
  get outstanding(): number {
    return Atomics.load(this.state, OUTSTANDING);
  }

  /** How long the client side has been silent (as UrbRelay.clientIdleMs: from the first look after its last chunk). */
  clientIdleMs(now = Date.now()): number {
    return this.clientClock.idleMs(Atomics.load(this.state, CLIENT_CHUNKS), now);
  }

  /** UrbRelay.detachClient in the worker; the old client's fd stays open until the next attachClient (the caller releases the port first). */
  detachClient(): Promise<boolean> {
    if (this.ended) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.detachAnswer = resolve;
      this.post({ t: "detach" });
      void this.done.then(() => resolve(false), () => resolve(false));
    });
  }

  /** UrbRelay.attachClient with a new socket fd (it becomes the worker's; closed here if the relay has ended). */
  attachClient(fd: number): void {
    // after the relay ended nobody would close it
    if (this.ended || this.exited) libc().close(fd);
    else this.post({ t: "attach", fd });
  }

  /** End a worker that was never started (e.g. the handshake failed); its done rejects. */
  cancel(): void {
    void this.worker.terminate();
  }

  private post(m: ToWorker): void {
    if (this.exited) return;
    this.worker.postMessage(m);
    // eventfd: an 8-byte counter; any write wakes the worker's poll() (EAGAIN only when it is
    // already at its maximum, i.e. awake anyway)
    try {
      writeSync(this.wakeFd, WAKE);
    } catch {
      // see above
    }
  }
}

const WAKE = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]);

/**
 * The worker side, called by a role's entry module: waits for "start", runs the relay on the fd
 * loop, answers the main thread's requests, and reports the result once the relay has ended and
 * its backlog is written (or FLUSH_MS passed); on "close" every fd is closed and the thread ends.
 */
export function serveRelayThread(role: (data: unknown) => RoleParts): void {
  const port = parentPort;
  if (port === null) throw new Error("serveRelayThread runs in a worker thread");
  const { wakeFd, state: stateBuffer } = workerData as { wakeFd: number; state: SharedArrayBuffer };
  const state = new Int32Array(stateBuffer);
  let relay: UrbRelay | undefined;
  let loop: FdLoop | undefined;
  let client: { close: () => void } | undefined;
  port.on("message", (m: ToWorker) => {
    if (m.t === "start") {
      const parts = role(m.role);
      const l = (loop = new FdLoop({ wakeFd, idleMs: () => (relay?.timersPending ? 5 : 500), afterBatch: () => publish() }));
      const clientIn = l.reader(m.fds.clientIn);
      const clientOut = l.writer(m.fds.clientOut);
      client = { close: () => (clientIn.destroy(), clientOut.destroy(), l.closeOnce(m.fds.clientIn), l.closeOnce(m.fds.clientOut)) };
      const r = (relay = new UrbRelay({
        ...parts,
        clientIn,
        clientOut,
        serverIn: l.reader(m.fds.serverIn),
        serverOut: l.writer(m.fds.serverOut),
        serverPrefix: m.serverPrefix && Buffer.from(m.serverPrefix),
        unlinkGraceMs: m.unlinkGraceMs,
        unlinkDeadlineMs: m.unlinkDeadlineMs,
      }));
      r.start();
      l.start();
      void r.done.then((result) => finish(result, l));
    } else if (m.t === "stop") relay?.stop();
    else if (m.t === "close") {
      loop?.stop();
      port.close();
    }
    else if (m.t === "detach") {
      const ok = relay?.detachClient() ?? false;
      publish();
      port.postMessage({ t: "detached", ok } satisfies FromWorker);
    } else if (m.t === "attach" && (loop === undefined || loop.isStopped)) {
      // the relay already ended: the new port's socket is not ours to keep open
      libc().close(m.fd);
    } else if (m.t === "attach" && relay && loop) {
      // the old client's port was released meanwhile: its socket can go
      client?.close();
      const l = loop;
      const input = l.reader(m.fd);
      const output = l.writer(m.fd);
      client = { close: () => (input.destroy(), output.destroy(), l.closeOnce(m.fd)) };
      relay.attachClient(input, output);
      publish();
    }
  });
  const publish = () => {
    if (relay === undefined) return;
    Atomics.store(state, OUTSTANDING, relay.outstanding);
    Atomics.store(state, CLIENT_CHUNKS, relay.clientChunkCount);
  };
  const finish = (result: RelayResult, l: FdLoop) => {
    publish();
    const until = Date.now() + FLUSH_MS;
    const whenFlushed = () => {
      if (!l.flushed && Date.now() < until) return void setTimeout(whenFlushed, 5);
      // nothing more is read or written (the relay has ended); the fds stay open until "close"
      const v = result.violation;
      const wire: FromWorker = { t: "done", result: { ...result, violation: v && { from: v.from, code: v.error.code as PeerDataErrorCode, offset: v.error.offset, rule: v.error.rule, seqnum: v.error.seqnum } } };
      port.postMessage(wire);
    };
    whenFlushed();
  };
}
