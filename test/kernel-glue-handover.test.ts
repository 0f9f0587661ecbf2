/**
 * Handing a socket to the kernel: the sysfs write names an fd of this process (socketpair(2)
 * through koffi), and what the kernel sends right after the handover (vhci-hcd's first
 * CMD_SUBMIT comes within microseconds of the attach) must wait in our end's buffer until the
 * relay listens. A Sysfs stand-in plays the kernel: on the write it answers through the fd it
 * was given, as vhci-hcd would, before handOverSocket has even returned.
 */
import test from "ava";
import { closeSync, mkdtempSync, readSync, readdirSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { handOverExisting, handOverSocket } from "../kernel-glue/handover.js";
import { libc } from "../shared/libc.js";
import { Sysfs, SysfsWriteError } from "../kernel-glue/sysfs.js";
import { socketPair } from "../shared/socketpair.js";
import { stopReading } from "../shared/stop-reading.js";

const tmp = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-handover-"));
const openFds = () => readdirSync("/proc/self/fd").length;

/** The fd a handover write names: "port FD devid speed" (vhci attach) or "FD" (usbip_sockfd). */
const fdIn = (data: string) => Number(data.includes(" ") ? data.split(" ")[1] : data);

/** A kernel stand-in: records the writes, and writes `answer` to the fd the write names. */
class KernelSysfs extends Sysfs {
  writes: string[] = [];
  constructor(private readonly answer?: string, private readonly refuse?: string) {
    super(tmp);
  }
  override write(rel: string, data: string): void {
    if (this.refuse) throw new SysfsWriteError(this.path(rel), this.refuse, data);
    this.writes.push(`${rel} ${data}`);
    if (this.answer) writeSync(fdIn(data), this.answer);
  }
}

test.serial("handOverSocket: the write names a socket of this process; bytes the kernel sends at once are kept until we read", async (t) => {
  const fs = new KernelSysfs("early bytes");
  const before = openFds();
  const sock = await handOverSocket(fs, "attach", (fd: number) => `0 ${fd} 65538 3`);
  t.regex(fs.writes[0]!, /^attach 0 \d+ 65538 3$/);
  await new Promise((r) => setTimeout(r, 200));
  const got = await new Promise<string>((resolve) => {
    sock.once("data", (b: Buffer) => resolve(b.toString()));
    sock.resume();
  });
  t.is(got, "early bytes");
  t.is(openFds(), before + 1, "the kernel's end is closed here (the kernel keeps its own reference); ours is open");
  sock.destroy();
});

test.serial("handOverSocket: our end carries both directions, and the kernel's close reaches it", async (t) => {
  // the stand-in keeps its own reference to the fd it was given, as the kernel does
  let kernelEnd = -1;
  const fs = new (class extends KernelSysfs {
    override write(rel: string, data: string): void {
      super.write(rel, data);
      kernelEnd = libc().dup(fdIn(data));
    }
  })();
  const sock = await handOverSocket(fs, "attach", (fd: number) => `0 ${fd} 65538 3`);
  t.true(kernelEnd > 2);
  sock.resume();
  sock.write("CMD");
  const b = Buffer.alloc(16);
  const n = await new Promise<number>((resolve) => {
    const tryRead = () => {
      try {
        resolve(readSync(kernelEnd, b, 0, 16, null));
      } catch {
        setTimeout(tryRead, 10);
      }
    };
    tryRead();
  });
  t.is(b.subarray(0, n).toString(), "CMD");
  const ended = new Promise<void>((resolve) => sock.once("end", () => resolve()));
  closeSync(kernelEnd);
  await ended;
  sock.destroy();
});

test.serial("handOverSocket: a refused write is an error naming the errno, and no fd is left open", async (t) => {
  const before = openFds();
  await t.throwsAsync(handOverSocket(new KernelSysfs(undefined, "EBUSY"), "attach", (fd: number) => `0 ${fd} 1 3`), { message: /failed: EBUSY/ });
  t.is(openFds(), before);
});

test.serial("handOverExisting: writes the fd of the given socket, in this process's table", async (t) => {
  const [a, b] = await socketPair();
  const fs = new KernelSysfs("hello");
  await handOverExisting(fs, "bus/usb/devices/2-1/usbip_sockfd", a, (fd) => String(fd));
  const fd = fdIn(fs.writes[0]!.split(" ")[1]!);
  t.true(fd > 2);
  // the "kernel" wrote into that fd: the other end of a's pair receives it
  const got = await new Promise<string>((resolve) => b.once("data", (x: Buffer) => resolve(x.toString())));
  t.is(got, "hello");
  a.destroy();
  b.destroy();
});

test.serial("handOverExisting: Node never reads the socket again, even after the stream machinery would restart reads (what the kernel is sent stays for the kernel)", async (t) => {
  const [a, b] = await socketPair();
  // as serve does: read the OP request, then stop (stopReading); the stream's maybeReadMore runs a tick later
  await new Promise<void>((resolve) => {
    const onData = () => {
      a.off("data", onData);
      stopReading(a);
      resolve();
    };
    a.on("data", onData);
    b.write("OP_REQ_IMPORT");
  });
  let kernelEnd = -1;
  const fs = new (class extends KernelSysfs {
    override write(rel: string, data: string): void {
      super.write(rel, data);
      kernelEnd = libc().dup(fdIn(data));
    }
  })();
  await handOverExisting(fs, "bus/usb/devices/2-1/usbip_sockfd", a, (fd) => String(fd));
  await new Promise((r) => setTimeout(r, 50));
  a.read(0); // what the stream machinery does by itself
  b.write("CMD_SUBMIT for the kernel");
  await new Promise((r) => setTimeout(r, 200));
  const got = Buffer.alloc(64);
  const n = readSync(kernelEnd, got, 0, 64, null);
  t.is(got.subarray(0, n).toString(), "CMD_SUBMIT for the kernel", "Node took bytes meant for the kernel");
  closeSync(kernelEnd);
  a.destroy();
  b.destroy();
});
