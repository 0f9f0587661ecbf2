/**
 * Handing a socket to the kernel: what the kernel sends right after the handover (vhci-hcd's
 * first CMD_SUBMIT comes within microseconds of the attach) must wait in our end's buffer until
 * the relay listens. A stand-in helper plays the kernel: it writes to its fd 3 and exits.
 */
import test from "ava";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const tmp = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-handover-"));
const fake = path.join(tmp, "fake-python");
writeFileSync(fake, "#!/bin/sh\n# args: HELPER write PATH DATA; the 'kernel' answers at once\nprintf 'early bytes' >&3\nexit 0\n");
chmodSync(fake, 0o755);
const failing = path.join(tmp, "failing-python");
writeFileSync(failing, "#!/bin/sh\necho 'OSError: [Errno 16] Device or resource busy' >&2\nexit 1\n");
chmodSync(failing, 0o755);

test.serial("handOverSocket: bytes the kernel sends before anyone listens are kept, not flushed when the helper exits", async (t) => {
  process.env.USBIP_QREXEC_PYTHON = fake;
  const { handOverSocket } = await import(`../kernel-glue/handover.js?fake=${Date.now()}`);
  const { Sysfs } = await import("../kernel-glue/sysfs.js");
  const sock = (await handOverSocket(new Sysfs(tmp), "attach", (fd: number) => `0 ${fd} 65538 3`)) as import("node:net").Socket;
  await new Promise((r) => setTimeout(r, 200)); // the helper is long gone
  const got = await new Promise<string>((resolve) => {
    sock.once("data", (b: Buffer) => resolve(b.toString()));
    sock.resume();
  });
  t.is(got, "early bytes");
  sock.destroy();
});

test.serial("handOverSocket: a refused write is an error naming the errno, and no socket is left open", async (t) => {
  process.env.USBIP_QREXEC_PYTHON = failing;
  const { handOverSocket } = await import(`../kernel-glue/handover.js?failing=${Date.now()}`);
  const { Sysfs } = await import("../kernel-glue/sysfs.js");
  await t.throwsAsync(handOverSocket(new Sysfs(tmp), "attach", (fd: number) => `0 ${fd} 1 3`), { message: /EBUSY|busy/ });
});
