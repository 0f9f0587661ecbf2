/**
 * The few libc calls Node does not offer — socketpair(), poll(), ioctl(), recv(MSG_PEEK),
 * fcntl(F_DUPFD_CLOEXEC), eventfd() — through koffi (a maintained FFI whose npm package carries
 * prebuilt binaries: nothing is compiled at install). Loaded on first use.
 * poll() and the blocking ioctls run on koffi's worker threads (libuv's pool: `pollAsync`,
 * `ioctlAsync`), so the event loop never blocks in them; a long wait should share one poll
 * (kernel-glue/hangup-watcher.ts) rather than hold a pool thread each. The synchronous poll,
 * read, writev and shutdown are for a thread that runs its own poll() loop (shared/fd-loop.ts,
 * on a worker thread): on the main thread they would stop the event loop.
 */
import { createRequire } from "node:module";
import { UsbipError } from "../protocol/errors.js";
import { GlueCode } from "../protocol/error-codes.js";

/** poll(2) events (asm-generic/poll.h) */
export const POLLIN = 0x001;
export const POLLOUT = 0x004;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
export const POLLNVAL = 0x020;
export const POLLRDHUP = 0x2000;
/** recv(2) flags */
export const MSG_PEEK = 0x02;
export const MSG_DONTWAIT = 0x40;
const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const F_DUPFD_CLOEXEC = 1030;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
/** errno values the fd loop tells apart (asm-generic/errno-base.h, errno.h) */
export const EINTR = 4;
export const EAGAIN = 11;
export const ENOTSOCK = 88;
/** shutdown(2) how */
export const SHUT_WR = 1;

interface KoffiFunction {
  (...args: unknown[]): number;
  async(...args: unknown[]): void;
}

export interface PollFd {
  fd: number;
  events: number;
}

export interface Libc {
  /** ioctl(fd, request, arg): arg is a Buffer (its memory is passed) or null; -1 and errno() on failure */
  ioctl(fd: number, request: number, arg: Buffer | null): number;
  /** the same on a worker thread (a USBDEVFS_RESET takes a while); resolves with its return value */
  ioctlAsync(fd: number, request: number, arg: Buffer | null): Promise<number>;
  /** poll() on one fd on a worker thread; resolves with revents (0 on timeout), or rejects with the errno */
  pollAsync(fd: number, events: number, timeoutMs: number): Promise<number>;
  /** poll() on several fds on a worker thread; resolves with each fd's revents, in order */
  pollManyAsync(fds: readonly PollFd[], timeoutMs: number): Promise<number[]>;
  /** socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC): two connected fds of this process */
  socketpair(): [number, number];
  /** recv(fd, buf, buf.length, flags): bytes received, or -1 and errno() */
  recv(fd: number, buf: Buffer, flags: number): number;
  /** fcntl(fd, F_DUPFD_CLOEXEC, 0): a new fd for the same open file, or -1 and errno() */
  dup(fd: number): number;
  /** fcntl(fd, cmd, arg) with an int argument (F_GETFL, F_SETFL, …): its result, or -1 and errno() */
  fcntl(fd: number, cmd: number, arg: number): number;
  /** eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), or -1 and errno() */
  eventfd(): number;
  /** poll(pfds, n, timeout) on this thread: pfds holds n struct pollfd (8 bytes each); returns poll's result */
  pollSync(pfds: Buffer, n: number, timeoutMs: number): number;
  /** read(fd, buf, buf.length) on this thread: bytes read, 0 at EOF, -1 and errno() */
  read(fd: number, buf: Buffer): number;
  /** writev(fd, bufs): bytes written, or -1 and errno(); at most IOV_MAX buffers */
  writev(fd: number, bufs: readonly Buffer[]): number;
  /** close(fd) through libc (a worker thread's fs.closeSync warns about fds it did not open) */
  close(fd: number): number;
  /** dup2(from, to): `to` becomes a copy of `from` (what it was is closed); `to`, or -1 and errno() */
  dup2(from: number, to: number): number;
  /** shutdown(fd, how): 0, or -1 and errno() */
  shutdown(fd: number, how: number): number;
  /** the calling thread's errno after the last failed call made through this module */
  errno(): number;
  /**
   * The address of a Buffer's memory, as the kernel will see it in a struct: its backing store's
   * (asked of koffi once per ArrayBuffer) plus the view's offset. A Number: user addresses on
   * the 64-bit ABIs we run on fit in 2^53.
   */
  address(b: Buffer): number;
}

let loaded: Libc | undefined;

export function libc(): Libc {
  if (loaded !== undefined) return loaded;
  let koffi: {
    load(name: string): { func(decl: string): KoffiFunction };
    errno(): number;
    address(v: unknown): bigint;
  };
  try {
    koffi = createRequire(import.meta.url)("koffi") as typeof koffi;
  } catch (e) {
    throw new UsbipError(GlueCode.LIBUSB, `this needs koffi (the FFI package) for ioctl(), poll() and socketpair(): ${(e as Error).message.split("\n")[0]}`);
  }
  const c = koffi.load("libc.so.6");
  // ioctl and fcntl are variadic in C; on the Linux ABIs we run on, a third pointer or int
  // argument is passed as a fixed one is, and koffi cannot run variadic functions on a worker
  // thread anyway
  const ioctl = c.func("int ioctl(int fd, unsigned long request, void *arg)");
  const fcntl = c.func("int fcntl(int fd, int cmd, int arg)");
  const poll = c.func("int poll(void *fds, unsigned long nfds, int timeout)");
  const socketpair = c.func("int socketpair(int domain, int type, int protocol, void *sv)");
  const recv = c.func("long recv(int fd, void *buf, unsigned long len, int flags)");
  const eventfd = c.func("int eventfd(unsigned int initval, int flags)");
  const read = c.func("long read(int fd, void *buf, unsigned long n)");
  const writev = c.func("long writev(int fd, void *iov, int iovcnt)");
  const shutdown = c.func("int shutdown(int fd, int how)");
  const close = c.func("int close(int fd)");
  const dup2 = c.func("int dup2(int oldfd, int newfd)");
  // struct iovec { void *iov_base; size_t iov_len; }: 16 bytes each; one array reused
  let iov = Buffer.alloc(16 * 64);
  let iov32 = new Uint32Array(iov.buffer, iov.byteOffset, iov.length / 4);
  // an ArrayBuffer's backing store: its address, asked of koffi once (a BigInt each time)
  const bases = new WeakMap<ArrayBufferLike, number>();
  let lastAb: ArrayBufferLike | undefined;
  let lastBase = 0;
  const baseAddress = (ab: ArrayBufferLike): number => {
    if (ab === lastAb) return lastBase;
    let a = bases.get(ab);
    if (a === undefined) bases.set(ab, (a = Number(koffi.address(ab))));
    lastAb = ab;
    lastBase = a;
    return a;
  };
  const errno = () => koffi.errno();
  const pollMany = (fds: readonly PollFd[], timeoutMs: number) =>
    new Promise<number[]>((resolve, reject) => {
      // struct pollfd { int fd; short events; short revents; }
      const pfd = Buffer.alloc(8 * fds.length);
      fds.forEach((f, i) => {
        pfd.writeInt32LE(f.fd, 8 * i);
        pfd.writeInt16LE(f.events, 8 * i + 4);
      });
      poll.async(pfd, fds.length, timeoutMs, (err: unknown, r: number) => {
        if (err) return reject(err instanceof Error ? err : new Error(String(err)));
        if (r < 0) return reject(Object.assign(new Error("poll failed"), { errno: errno() }));
        resolve(fds.map((_, i) => (r === 0 ? 0 : pfd.readInt16LE(8 * i + 6))));
      });
    });
  loaded = {
    ioctl: (fd, request, arg) => ioctl(fd, request, arg),
    ioctlAsync: (fd, request, arg) =>
      new Promise((resolve, reject) => {
        ioctl.async(fd, request, arg, (err: unknown, r: number) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(r)));
      }),
    pollAsync: (fd, events, timeoutMs) => pollMany([{ fd, events }], timeoutMs).then((r) => r[0]!),
    pollManyAsync: pollMany,
    socketpair: () => {
      const sv = Buffer.alloc(8);
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) throw new UsbipError(GlueCode.SYSFS, `socketpair failed: errno ${errno()}`);
      return [sv.readInt32LE(0), sv.readInt32LE(4)];
    },
    recv: (fd, buf, flags) => Number(recv(fd, buf, buf.length, flags)),
    dup: (fd) => fcntl(fd, F_DUPFD_CLOEXEC, 0),
    fcntl: (fd, cmd, arg) => fcntl(fd, cmd, arg),
    eventfd: () => eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
    pollSync: (pfds, n, timeoutMs) => poll(pfds, n, timeoutMs),
    read: (fd, buf) => Number(read(fd, buf, buf.length)),
    writev: (fd, bufs) => {
      if (iov.length < 16 * bufs.length) {
        iov = Buffer.alloc(16 * bufs.length);
        iov32 = new Uint32Array(iov.buffer, iov.byteOffset, iov.length / 4);
      }
      // Buffers' memory lives outside V8's heap and does not move; `bufs` keeps it alive for the
      // call. The address is the backing store's (looked up once per ArrayBuffer: the buffers of
      // one writev are mostly views of the same read buffer or pool slab) plus the view's offset,
      // written as two 32-bit halves (little-endian x86-64 / arm64): no BigInt per buffer
      for (let i = 0; i < bufs.length; i++) {
        const b = bufs[i]!;
        const addr = baseAddress(b.buffer) + b.byteOffset;
        iov32[4 * i] = addr % 0x1_0000_0000;
        iov32[4 * i + 1] = Math.floor(addr / 0x1_0000_0000);
        iov32[4 * i + 2] = b.length;
        iov32[4 * i + 3] = 0;
      }
      return Number(writev(fd, iov, bufs.length));
    },
    shutdown: (fd, how) => shutdown(fd, how),
    close: (fd) => close(fd),
    dup2: (from, to) => dup2(from, to),
    errno,
    address: (b) => baseAddress(b.buffer) + b.byteOffset,
  };
  return loaded;
}
