/**
 * `--trace FILE.pcapng`: every URB as it passes the relay, as a usbmon event in a pcapng file
 * (Wireshark/tshark decode it with their USB dissectors). Writes are appended asynchronously
 * through one write stream; payloads are written as the views the relay already holds.
 * "-" is standard output (`--trace - | wireshark -k -i -`); a FIFO works as any file.
 *
 * The file is opened before anything else happens (a path that cannot be written is refused
 * before a port is attached or a device bound), and a write error later (disk full, the reader
 * of a FIFO gone) stops the trace, is reported once, and never takes the relay down.
 */
import { createWriteStream, openSync } from "node:fs";
import type { Writable } from "node:stream";
import { UsbipError, RuntimeCode } from "../protocol/errors.js";
import type { Message } from "../protocol/messages.js";
import { enhancedPacketBlock, interfaceDescriptionBlock, LINKTYPE_USB_LINUX_MMAPPED, sectionHeaderBlock } from "./pcapng.js";
import { usbmonEvent, type UrbContext } from "./usbmon.js";

const reason = (e: NodeJS.ErrnoException): string =>
  ({ ENOENT: "no such directory", EISDIR: "is a directory", EACCES: "permission denied", EROFS: "read-only file system", ENOSPC: "no space left on the device", EPIPE: "the reader went away", ENOTDIR: "a path component is not a directory" })[e.code ?? ""] ?? e.code ?? e.message;

export class PcapngTrace {
  private readonly out: Writable;
  /** wall-clock microseconds at hrtime 0, so timestamps are wall time with µs resolution */
  private readonly base = BigInt(Date.now()) * 1000n - process.hrtime.bigint() / 1000n;
  private failed: (Error & { code?: string }) | undefined;
  count = 0;

  /**
   * Open `file` ("-": stdout) for writing now; throws a one-line UsbipError (USBIP_ERR_OUTPUT)
   * if it cannot be. `onError` is told once about a later write error.
   */
  static open(file: string, onError: (e: Error) => void = () => {}): PcapngTrace {
    // stdout is process.stdout itself: a libuv stream that waits on a full pipe (an fs write to
    // fd 1 would fail with EAGAIN once Node has made the pipe non-blocking)
    if (file === "-") return new PcapngTrace(process.stdout, file, onError);
    let fd: number;
    try {
      fd = openSync(file, "w");
    } catch (e) {
      throw new UsbipError(RuntimeCode.OUTPUT, `cannot write the trace ${file}: ${reason(e as NodeJS.ErrnoException)}`);
    }
    return new PcapngTrace(createWriteStream("", { fd }), file, onError);
  }

  private constructor(
    out: Writable,
    readonly file: string,
    private readonly onError: (e: Error) => void,
  ) {
    this.out = out;
    // our own listener: the CLI's stdout EPIPE handler stands back while one is there
    this.out.on("error", (e: NodeJS.ErrnoException) => this.fail(e));
    this.out.write(sectionHeaderBlock());
    this.out.write(interfaceDescriptionBlock(LINKTYPE_USB_LINUX_MMAPPED));
  }

  private fail(e: NodeJS.ErrnoException): void {
    if (this.failed) return;
    this.failed = Object.assign(new Error(reason(e)), { code: e.code });
    this.onError(this.failed);
  }

  /** The write error that stopped the trace, if any. */
  get error(): Error | undefined {
    return this.failed;
  }

  /**
   * Record one message (`comment`: the packet's pcapng comment, e.g. the mutation the fuzzer made
   * in it); `tsMicros` defaults to the wall clock now. False when it makes no event (OP_*, HANDSHAKE).
   */
  record(m: Message, ctx: UrbContext & { comment?: string | undefined } = {}, tsMicros: bigint = this.base + process.hrtime.bigint() / 1000n): boolean {
    const ev = usbmonEvent(m, tsMicros, ctx);
    if (ev === undefined) return false;
    if (this.failed) return true;
    for (const b of enhancedPacketBlock(tsMicros, ev, 0, ctx.comment)) this.out.write(b);
    this.count++;
    return true;
  }

  /** Flush and close (stdout: flush only); rejects with the write error that stopped the trace, if any. */
  close(): Promise<void> {
    return new Promise((resolve, reject) => {
      const settle = () => (this.failed ? reject(this.failed) : resolve());
      if (this.failed || this.out.destroyed) return settle();
      const done = (e?: Error | null) => {
        if (e) this.fail(e as NodeJS.ErrnoException);
        settle();
      };
      if (this.out === process.stdout) this.out.write(Buffer.alloc(0), done);
      else this.out.end(done);
    });
  }
}
