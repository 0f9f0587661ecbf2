/**
 * koffi-hop: the C copy hop's twin in Node, for the VM data-path bench (the "koffiCopyHop" path):
 * what a Node process can reach when its data path leaves the event loop. Usage:
 * `node koffi-hop.js CMD [ARGS...]` — runs CMD with fd 0 and fd 1 on one end of a new Unix
 * socketpair and copies bytes between our fd 0 / fd 1 and the other end: one worker thread per
 * direction that blocks only in poll() (100 ms timeout: it can always be stopped) and then
 * reads and writes with koffi's read()/write(), one 1 MiB buffer each; no parsing, no libuv
 * stream. EOF is passed on with shutdown(SHUT_WR). Exits with CMD's status once CMD has exited.
 * Not a product path: the measurement that says whether a relay built this way can approach the
 * C hop under emulation (docs/BENCHMARKS.md).
 */
import { spawn } from "node:child_process";
import { closeSync } from "node:fs";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import koffi from "koffi";

const POLLIN = 0x001;
const POLLOUT = 0x004;
const EINTR = 4;
const EAGAIN = 11;
const POLLHUP = 0x010;
const SHUT_WR = 1;

function libcCalls() {
  const c = koffi.load("libc.so.6");
  return {
    read: c.func("long read(int fd, void *buf, unsigned long n)"),
    write: c.func("long write(int fd, void *buf, unsigned long n)"),
    poll: c.func("int poll(void *fds, unsigned long nfds, int timeout)"),
    shutdown: c.func("int shutdown(int fd, int how)"),
    socketpair: c.func("int socketpair(int domain, int type, int protocol, void *sv)"),
  } as Record<string, (...a: unknown[]) => number>;
}

/** One direction: from → to until EOF or an error. */
function copy(from: number, to: number): void {
  const c = libcCalls();
  const buf = Buffer.allocUnsafe(1 << 20);
  // struct pollfd { int fd; short events; short revents; }
  const pfd = Buffer.alloc(8);
  const wait = (fd: number, events: number): number => {
    pfd.writeInt32LE(fd, 0);
    pfd.writeInt16LE(events, 4);
    pfd.writeInt16LE(0, 6);
    return c.poll!(pfd, 1, 100) > 0 ? pfd.readInt16LE(6) : 0;
  };
  // the link's fds may be non-blocking (another process of the flow set O_NONBLOCK on the file
  // they share): EAGAIN means wait for readiness again
  const again = () => [EAGAIN, EINTR].includes(koffi.errno());
  for (;;) {
    const ready = wait(from, POLLIN);
    if (ready === 0) continue;
    if ((ready & (POLLIN | POLLHUP)) === 0) break;
    const n = c.read!(from, buf, buf.length);
    if (n < 0 && again()) continue;
    if (n <= 0) break;
    for (let off = 0; off < n; ) {
      const w = c.write!(to, off === 0 ? buf : buf.subarray(off), n - off);
      if (w < 0 && again()) {
        wait(to, POLLOUT);
        continue;
      }
      if (w <= 0) return;
      off += w;
    }
  }
  c.shutdown!(to, SHUT_WR);
}

/**
 * Both directions in one thread (`--one-thread`): one poll() over both inputs, then each
 * ready input read once and its bytes written out — what a relay's single loop would do.
 */
function copyBoth(pairs: Array<{ from: number; to: number }>): void {
  const c = libcCalls();
  const buf = Buffer.allocUnsafe(1 << 20);
  const pfd = Buffer.alloc(8 * pairs.length);
  const one = Buffer.alloc(8);
  const open = pairs.map(() => true);
  const again = () => [EAGAIN, EINTR].includes(koffi.errno());
  while (open.some((o) => o)) {
    pairs.forEach((p, i) => {
      pfd.writeInt32LE(open[i] ? p.from : -1, 8 * i);
      pfd.writeInt16LE(POLLIN, 8 * i + 4);
      pfd.writeInt16LE(0, 8 * i + 6);
    });
    if (c.poll!(pfd, pairs.length, 100) <= 0) continue;
    pairs.forEach((p, i) => {
      const ready = pfd.readInt16LE(8 * i + 6);
      if (!open[i] || ready === 0) return;
      const n = (ready & (POLLIN | POLLHUP)) === 0 ? 0 : c.read!(p.from, buf, buf.length);
      if (n < 0 && again()) return;
      if (n <= 0) {
        open[i] = false;
        c.shutdown!(p.to, SHUT_WR);
        return;
      }
      for (let off = 0; off < n; ) {
        const w = c.write!(p.to, off === 0 ? buf : buf.subarray(off), n - off);
        if (w < 0 && again()) {
          one.writeInt32LE(p.to, 0);
          one.writeInt16LE(POLLOUT, 4);
          c.poll!(one, 1, 100);
          continue;
        }
        if (w <= 0) {
          open[i] = false;
          return;
        }
        off += w;
      }
    });
  }
}

if (!isMainThread) {
  const d = workerData as { from: number; to: number } | { pairs: Array<{ from: number; to: number }> };
  if ("pairs" in d) copyBoth(d.pairs);
  else copy(d.from, d.to);
  parentPort?.postMessage("done");
} else {
  const oneThread = process.argv[2] === "--one-thread";
  const [cmd, ...args] = process.argv.slice(oneThread ? 3 : 2);
  if (cmd === undefined) {
    process.stderr.write("usage: koffi-hop [--one-thread] CMD [ARGS...]\n");
    process.exit(64);
  }
  const c = libcCalls();
  const sv = Buffer.alloc(8);
  // AF_UNIX 1, SOCK_STREAM 1
  if (c.socketpair!(1, 1, 0, sv) !== 0) {
    process.stderr.write("koffi-hop: socketpair failed\n");
    process.exit(1);
  }
  const [ours, theirs] = [sv.readInt32LE(0), sv.readInt32LE(4)];
  const child = spawn(cmd, args, { stdio: [theirs, theirs, "inherit"] });
  closeSync(theirs); // the child has its own copies: its exit is our EOF
  const pairs = [
    { from: 0, to: ours },
    { from: ours, to: 1 },
  ];
  if (oneThread) new Worker(new URL(import.meta.url), { workerData: { pairs } }).unref();
  else for (const p of pairs) new Worker(new URL(import.meta.url), { workerData: p }).unref();
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
  for (const s of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(s, () => child.kill(s));
}
