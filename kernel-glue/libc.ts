/**
 * The few libc calls Node does not offer — ioctl() and poll() on a raw fd — through koffi (a
 * maintained FFI whose npm package carries prebuilt binaries: nothing is compiled at install).
 * Loaded on first use, so a mode that never needs them does not depend on the native addon.
 * poll() runs on koffi's worker threads (`pollAsync`): the event loop never blocks in it.
 */
import { createRequire } from "node:module";
import { GlueError, GlueErrorCode } from "./errors.js";

/** poll(2) events (asm-generic/poll.h) */
export const POLLIN = 0x001;
export const POLLOUT = 0x004;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;

interface KoffiFunction {
  (...args: unknown[]): number;
  async(...args: unknown[]): void;
}

export interface Libc {
  /** ioctl(fd, request, arg): arg is a Buffer (its memory is passed) or null; -1 and errno() on failure */
  ioctl(fd: number, request: number, arg: Buffer | null): number;
  /** poll() on one fd on a worker thread; resolves with revents (0 on timeout), or rejects with the errno */
  pollAsync(fd: number, events: number, timeoutMs: number): Promise<number>;
  /** the calling thread's errno after the last failed call made through this module */
  errno(): number;
  /** the address of a Buffer's memory, as the kernel will see it in a struct */
  address(b: Buffer): bigint;
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
    throw new GlueError(GlueErrorCode.LIBUSB, `this needs koffi (the FFI package) for ioctl() and poll(): ${(e as Error).message.split("\n")[0]}`);
  }
  const c = koffi.load("libc.so.6");
  // ioctl is variadic in C; on the Linux ABIs we run on, a third pointer argument is passed as a
  // fixed one is, and koffi cannot run variadic functions on a worker thread anyway
  const ioctl = c.func("int ioctl(int fd, unsigned long request, void *arg)");
  const poll = c.func("int poll(void *fds, unsigned long nfds, int timeout)");
  const errno = () => koffi.errno();
  loaded = {
    ioctl: (fd, request, arg) => ioctl(fd, request, arg),
    pollAsync: (fd, events, timeoutMs) =>
      new Promise((resolve, reject) => {
        // struct pollfd { int fd; short events; short revents; }
        const pfd = Buffer.alloc(8);
        pfd.writeInt32LE(fd, 0);
        pfd.writeInt16LE(events, 4);
        poll.async(pfd, 1, timeoutMs, (err: unknown, r: number) => {
          if (err) return reject(err instanceof Error ? err : new Error(String(err)));
          if (r < 0) return reject(Object.assign(new Error("poll failed"), { errno: errno() }));
          resolve(r === 0 ? 0 : pfd.readInt16LE(6));
        });
      }),
    errno,
    address: (b) => koffi.address(b),
  };
  return loaded;
}
