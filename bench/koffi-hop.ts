/**
 * koffi-hop: the C copy hop's twin in Node, for the VM data-path bench (the "koffiCopyHop" path):
 * what a Node process can reach when its data path leaves the event loop. Usage:
 * `node koffi-hop.js [--one-thread] CMD [ARGS...]` — runs CMD with fd 0 and fd 1 on one end of a new Unix
 * socketpair and copies bytes between our fd 0 / fd 1 and the other end: one worker thread per
 * direction that blocks only in poll() (100 ms timeout: it can always be stopped) and then
 * reads and writes with koffi's read()/writev() (shared/libc.ts), one 1 MiB buffer each; no parsing, no libuv
 * stream. EOF is passed on with shutdown(SHUT_WR). Exits with CMD's status once CMD has exited
 * and its output has been passed on (at most 2 s later).
 * Not a product path: the measurement that says whether a relay built this way can approach the
 * C hop under emulation (docs/BENCHMARKS.md).
 */
import { spawn } from "node:child_process";
import { closeSync } from "node:fs";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { EAGAIN, EINTR, libc, POLLHUP, POLLIN, POLLOUT, SHUT_WR } from "../shared/libc.js";

/** poll() on one fd for `events` (100 ms at most); its revents, 0 on timeout */
function waitFor(pfd: Buffer, fd: number, events: number): number {
  // struct pollfd { int fd; short events; short revents; }
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(events, 4);
  pfd.writeInt16LE(0, 6);
  return libc().pollSync(pfd, 1, 100) > 0 ? pfd.readInt16LE(6) : 0;
}

/** Write all of buf to `to`, waiting for POLLOUT on EAGAIN (the link's fds may be non-blocking: another process of the flow set O_NONBLOCK on the file they share). false if the write failed. */
function writeAll(pfd: Buffer, to: number, buf: Buffer): boolean {
  const c = libc();
  for (let off = 0; off < buf.length; ) {
    const w = c.writev(to, [off === 0 ? buf : buf.subarray(off)]);
    if (w < 0 && [EAGAIN, EINTR].includes(c.errno())) {
      waitFor(pfd, to, POLLOUT);
      continue;
    }
    if (w <= 0) return false;
    off += w;
  }
  return true;
}

/** One direction: from → to until EOF or an error. */
function copy(from: number, to: number): void {
  const c = libc();
  const buf = Buffer.allocUnsafe(1 << 20);
  const pfd = Buffer.alloc(8);
  for (;;) {
    const ready = waitFor(pfd, from, POLLIN);
    if (ready === 0) continue;
    if ((ready & (POLLIN | POLLHUP)) === 0) break;
    const n = c.read(from, buf);
    if (n < 0 && [EAGAIN, EINTR].includes(c.errno())) continue;
    if (n <= 0) break;
    if (!writeAll(pfd, to, buf.subarray(0, n))) return;
  }
  c.shutdown(to, SHUT_WR);
}

/**
 * Both directions in one thread (`--one-thread`): one poll() over both inputs, then each
 * ready input read once and its bytes written out before the next poll (unlike the relay
 * thread's loop, which queues them): fit for USB/IP's traffic, whose bytes in flight are bounded
 * by the URBs in flight, not for an unbounded full-duplex stream, where both socket buffers
 * can fill while each side writes.
 */
function copyBoth(pairs: Array<{ from: number; to: number }>): void {
  const c = libc();
  const buf = Buffer.allocUnsafe(1 << 20);
  const pfd = Buffer.alloc(8 * pairs.length);
  const one = Buffer.alloc(8);
  const open = pairs.map(() => true);
  while (open.some((o) => o)) {
    pairs.forEach((p, i) => {
      pfd.writeInt32LE(open[i] ? p.from : -1, 8 * i);
      pfd.writeInt16LE(POLLIN, 8 * i + 4);
      pfd.writeInt16LE(0, 8 * i + 6);
    });
    if (c.pollSync(pfd, pairs.length, 100) <= 0) continue;
    pairs.forEach((p, i) => {
      const ready = pfd.readInt16LE(8 * i + 6);
      if (!open[i] || ready === 0) return;
      const n = (ready & (POLLIN | POLLHUP)) === 0 ? 0 : c.read(p.from, buf);
      if (n < 0 && [EAGAIN, EINTR].includes(c.errno())) return;
      if (n <= 0 || !writeAll(one, p.to, buf.subarray(0, n))) {
        open[i] = false;
        c.shutdown(p.to, SHUT_WR);
        parentPort?.postMessage({ closed: p.from });
      }
    });
  }
}

if (!isMainThread) {
  const d = workerData as { from: number; to: number } | { pairs: Array<{ from: number; to: number }> };
  if ("pairs" in d) copyBoth(d.pairs);
  else {
    copy(d.from, d.to);
    parentPort?.postMessage({ closed: d.from });
  }
} else {
  const oneThread = process.argv[2] === "--one-thread";
  const [cmd, ...args] = process.argv.slice(oneThread ? 3 : 2);
  if (cmd === undefined) {
    process.stderr.write("usage: koffi-hop [--one-thread] CMD [ARGS...]\n");
    process.exit(64);
  }
  const [ours, theirs] = libc().socketpair();
  const child = spawn(cmd, args, { stdio: [theirs, theirs, "inherit"] });
  closeSync(theirs); // the child has its own copies: its exit is our EOF
  const pairs = [
    { from: 0, to: ours },
    { from: ours, to: 1 },
  ];
  // CMD's output is ours to pass on until its end of the socketpair is read to EOF
  let outputDone = false;
  const workers = oneThread ? [new Worker(new URL(import.meta.url), { workerData: { pairs } })] : pairs.map((p) => new Worker(new URL(import.meta.url), { workerData: p }));
  for (const w of workers) {
    w.unref();
    w.on("message", (m: { closed: number }) => (outputDone ||= m.closed === ours));
  }
  child.on("exit", (code, signal) => {
    const status = code ?? (signal ? 128 : 1);
    const until = Date.now() + 2000;
    const leave = () => (outputDone || Date.now() > until ? process.exit(status) : setTimeout(leave, 5));
    leave();
  });
  for (const s of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(s, () => child.kill(s));
}
