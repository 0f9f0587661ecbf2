/**
 * Byte streams on raw file descriptors, moved by one poll() loop on the calling thread: the
 * relay's data path on a worker thread (relay/relay-thread.ts), off libuv's stream handles.
 * Measured in the VM (docs/BENCHMARKS.md): a copy hop built this way moves 2.5x the bytes of an
 * event-loop hop with 32 URBs in flight — one thread or two alike — so the cost was the stream
 * machinery per chunk, not the lack of threads.
 *
 * The loop blocks only in poll(), with a timeout, and gives the thread's own event loop a turn
 * (setImmediate) when poll() times out, when the wake fd (an eventfd the owner writes after it
 * posts a message) is readable, and after TURN_MS of continuous work: the thread's timers and
 * messages are never late by much more than that. Reads go into the free end of a 1 MiB slab
 * (the relay keeps views of what it read until they are written, so no read overwrites an
 * earlier one); writes are queued and leave in one writev() per uncork. Every fd is made non-blocking: a peer that stops reading can hold up nothing but its
 * own backlog. The loop closes each fd once, when it is stopped (fd 0 and 1: see closeOnce).
 */
import { EventEmitter } from "node:events";
import { closeSync, openSync } from "node:fs";
import { EAGAIN, EINTR, ENOTSOCK, libc, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, SHUT_WR } from "./libc.js";
import type { ByteSink, ByteSource } from "./byte-stream.js";

/** The longest the loop works before the thread's event loop gets a turn. */
export const TURN_MS = 5;
/** Batches between two looks at the clock (for TURN_MS). */
const CLOCK_EVERY = 8;
/** Reads go into slabs this large, one after another (see FdReader.ready). */
const SLAB_SIZE = 1024 * 1024;
/** The least room a read is given (a 64 KiB URB with its header fits). */
const MIN_READ = 128 * 1024;
/** Buffers per writev() (Linux's IOV_MAX is 1024). */
const IOV_BATCH = 256;
/** fcntl(2) */
const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;

export class FdError extends Error {
  constructor(
    readonly op: string,
    readonly errno: number,
  ) {
    super(`${op} failed: errno ${errno}`);
  }
}

/** Reads of one fd: "data" for each read, "end" at EOF, "error" for a failed read. */
export class FdReader extends EventEmitter implements ByteSource {
  private paused = true;
  private ended = false;
  destroyed = false;
  /** where reads go: bytes [0, used) are handed out as chunks */
  private slab: Buffer | undefined;
  private used = 0;

  constructor(
    private readonly loop: FdLoop,
    readonly fd: number,
  ) {
    super();
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    this.paused = false;
    return this;
  }

  destroy(): this {
    this.destroyed = true;
    return this;
  }

  /** polled for POLLIN now */
  get wants(): boolean {
    return !this.paused && !this.ended && !this.destroyed;
  }

  /**
   * poll() said the fd is readable (or hung up, or failed): one read, into the free end of the
   * current slab. Each chunk is a view of the slab that no later read overwrites (the relay keeps
   * views until they are written); a slab with less than MIN_READ bytes free is left to the views
   * still pointing into it, and a fresh one taken: one allocation per SLAB_SIZE bytes read, not
   * one per read.
   */
  ready(): void {
    if (this.slab === undefined || this.slab.length - this.used < MIN_READ) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
      this.used = 0;
    }
    const free = this.slab.subarray(this.used);
    const n = this.loop.c.read(this.fd, free);
    if (n < 0) {
      const e = this.loop.c.errno();
      if (e === EAGAIN || e === EINTR) return;
      this.ended = true;
      this.emit("error", new FdError("read", e));
      return;
    }
    if (n === 0) {
      this.ended = true;
      this.emit("end");
      return;
    }
    this.used += n;
    this.emit("data", free.subarray(0, n));
  }
}

/** Writes to one fd: queued, written at once unless corked, the rest when poll() says POLLOUT. */
export class FdWriter extends EventEmitter implements ByteSink {
  private queue: Buffer[] = [];
  writableLength = 0;
  private corked = 0;
  private ending = false;
  private failed = false;
  /** after end(): the backlog written and EOF sent (or the writer destroyed) */
  finished = false;
  destroyed = false;
  /** a "drain" is owed: the backlog grew past nothing while someone may be waiting */
  writableNeedDrain = false;

  constructor(
    private readonly loop: FdLoop,
    readonly fd: number,
  ) {
    super();
  }

  write(chunk: Buffer): boolean {
    if (this.destroyed || this.ending || this.failed) return false;
    if (chunk.length === 0) return true;
    this.queue.push(chunk);
    this.writableLength += chunk.length;
    if (this.corked === 0) this.flush();
    if (this.writableLength > 0) this.writableNeedDrain = true;
    return this.writableLength === 0;
  }

  cork(): void {
    this.corked++;
  }

  uncork(): void {
    if (this.corked > 0 && --this.corked === 0) this.flush();
  }

  /** EOF after the backlog: shutdown(SHUT_WR) on a socket, close() on anything else (a pipe) */
  end(): this {
    if (this.ending || this.destroyed) return this;
    this.ending = true;
    this.corked = 0;
    this.flush();
    return this;
  }

  destroy(): this {
    this.destroyed = true;
    this.finished = true;
    this.queue = [];
    this.writableLength = 0;
    return this;
  }

  /** polled for POLLOUT now */
  get wants(): boolean {
    return this.writableLength > 0 && !this.destroyed && !this.failed;
  }

  /** Write what is queued, as much as the fd takes now. */
  flush(): void {
    while (this.queue.length > 0 && !this.destroyed && !this.failed) {
      const batch = this.queue.length <= IOV_BATCH ? this.queue : this.queue.slice(0, IOV_BATCH);
      const n = this.loop.c.writev(this.fd, batch);
      if (n < 0) {
        const e = this.loop.c.errno();
        if (e === EAGAIN || e === EINTR) return;
        this.failed = true;
        this.finished = true;
        this.queue = [];
        this.writableLength = 0;
        // said after the caller's work on this chunk (as Node's streams do)
        process.nextTick(() => this.emit("error", new FdError("write", e)));
        return;
      }
      this.writableLength -= n;
      let left = n;
      let i = 0;
      while (i < this.queue.length && left >= this.queue[i]!.length) left -= this.queue[i++]!.length;
      this.queue = i === this.queue.length ? [] : this.queue.slice(i);
      if (left > 0) this.queue[0] = this.queue[0]!.subarray(left);
    }
    if (this.writableLength > 0 || this.failed || this.destroyed) return;
    if (this.writableNeedDrain) {
      this.writableNeedDrain = false;
      this.emit("drain");
    }
    if (this.ending && !this.finished) {
      this.finished = true;
      if (this.loop.c.shutdown(this.fd, SHUT_WR) < 0 && this.loop.c.errno() === ENOTSOCK) this.loop.closeOnce(this.fd);
      this.emit("finish");
    }
  }
}

/**
 * Another fd the loop polls for its owner (the userspace backend's usbfs fd, whose POLLOUT says
 * URBs completed): polled for `events` while wants() is true; ready() gets the revents, with the
 * loop's writers corked (what it writes leaves in one writev each). Its owner's work must be done
 * in ready() itself: promises it settles run only when the thread's event loop gets its turn.
 */
export interface FdWatch {
  readonly fd: number;
  readonly events: number;
  wants(): boolean;
  ready(revents: number): void;
}

export interface FdLoopOptions {
  /** an eventfd (non-blocking) the owner writes after posting a message: wakes the loop */
  wakeFd?: number;
  /** how long poll() may wait while nothing happens (ms); asked before each poll */
  idleMs: () => number;
  /** after each batch of reads and writes (e.g. to publish counters) */
  afterBatch?: () => void;
}

export class FdLoop {
  readonly c = libc();
  private readonly readers: FdReader[] = [];
  private readonly writers: FdWriter[] = [];
  private readonly watches: FdWatch[] = [];
  private readonly closed = new Set<number>();
  private stopped = false;
  private pfd = Buffer.alloc(8 * 8);
  /** who asked for entry k of the pollfd list (undefined: the wake fd) */
  private readonly waiting: Array<FdReader | FdWriter | FdWatch | undefined> = [];
  private readonly drained = Buffer.alloc(8);

  constructor(private readonly o: FdLoopOptions) {}

  reader(fd: number): FdReader {
    this.nonBlocking(fd);
    const r = new FdReader(this, fd);
    this.readers.push(r);
    return r;
  }

  writer(fd: number): FdWriter {
    this.nonBlocking(fd);
    const w = new FdWriter(this, fd);
    this.writers.push(w);
    return w;
  }

  /** Poll `w.fd` too, for its owner (the loop neither reads, writes nor closes it). */
  watch(w: FdWatch): void {
    this.watches.push(w);
  }

  /** Start turning (on the next turn of the thread's event loop). */
  start(): void {
    setImmediate(() => this.turn());
  }

  /** Stop turning; every fd the loop was given is closed (once). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const x of [...this.readers, ...this.writers]) this.closeOnce(x.fd);
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** true once every writer that was ended has written its backlog (or failed, or was destroyed) */
  get flushed(): boolean {
    return this.writers.every((w) => w.finished || w.writableLength === 0);
  }

  /**
   * Close `fd` (once). Standard input and output (the qrexec link) are not closed but pointed at
   * /dev/null: the link is let go all the same, the numbers stay taken (nothing opened later can
   * become "fd 1"), and Node's exit, which looks at its stdio fds, finds them valid.
   */
  closeOnce(fd: number): void {
    if (this.closed.has(fd)) return;
    this.closed.add(fd);
    if (fd > 2) {
      this.c.close(fd);
      return;
    }
    const nul = openSync("/dev/null", "r+");
    this.c.dup2(nul, fd);
    closeSync(nul);
  }

  /** Entry `i` of the pollfd list (struct pollfd { int fd; short events; short revents; }); returns i + 1. */
  private put(i: number, fd: number, events: number, who: FdReader | FdWriter | FdWatch | undefined): number {
    if (this.pfd.length < 8 * (i + 1)) {
      const bigger = Buffer.alloc(2 * this.pfd.length);
      this.pfd.copy(bigger);
      this.pfd = bigger;
    }
    this.pfd.writeInt32LE(fd, 8 * i);
    this.pfd.writeInt16LE(events, 8 * i + 4);
    this.pfd.writeInt16LE(0, 8 * i + 6);
    this.waiting[i] = who;
    return i + 1;
  }

  private nonBlocking(fd: number): void {
    const fl = this.c.fcntl(fd, F_GETFL, 0);
    if (fl >= 0 && (fl & O_NONBLOCK) === 0) this.c.fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  }

  private turn(): void {
    const began = performance.now();
    // the clock is read every CLOCK_EVERY batches only: in a VM whose clocksource has no vDSO
    // path each read is a system call
    const waiting = this.waiting;
    for (let batch = 1; !this.stopped; batch++) {
      // the pollfd list, rebuilt each batch (who wants what changes with every read and write)
      // into buffers kept across batches: nothing allocated per poll
      let n = 0;
      for (const r of this.readers) if (r.wants && !this.closed.has(r.fd)) n = this.put(n, r.fd, POLLIN, r);
      for (const w of this.writers) if (w.wants && !this.closed.has(w.fd)) n = this.put(n, w.fd, POLLOUT, w);
      for (const w of this.watches) if (w.wants()) n = this.put(n, w.fd, w.events, w);
      if (this.o.wakeFd !== undefined) n = this.put(n, this.o.wakeFd, POLLIN, undefined);
      if (n === 0) {
        // nothing to wait for (everything paused or done, no wake fd): a timer turns us again
        if (!this.stopped) setTimeout(() => this.turn(), this.o.idleMs());
        return;
      }
      const got = this.c.pollSync(this.pfd, n, this.o.idleMs());
      if (got < 0 && this.c.errno() !== EINTR) throw new FdError("poll", this.c.errno());
      if (got <= 0) break;
      let woken = false;
      for (let k = 0; k < n; k++) {
        const revents = this.pfd.readInt16LE(8 * k + 6);
        if (revents === 0) continue;
        const who = waiting[k];
        if (who === undefined) {
          woken = true;
          this.c.read(this.o.wakeFd!, this.drained);
        } else if (who instanceof FdReader) {
          if (who.wants) who.ready();
        } else if (who instanceof FdWriter) {
          if (revents & (POLLOUT | POLLERR | POLLHUP | POLLNVAL)) who.flush();
        } else {
          // what the watch's owner writes in ready() (the RETs of the URBs it reaped) leaves in one writev per fd
          for (const w of this.writers) w.cork();
          try {
            who.ready(revents);
          } finally {
            for (const w of this.writers) w.uncork();
          }
        }
      }
      this.o.afterBatch?.();
      if (woken || (batch % CLOCK_EVERY === 0 && performance.now() - began > TURN_MS)) break;
    }
    if (!this.stopped) setImmediate(() => this.turn());
  }
}
