/**
 * `export DEVICE` in kernel mode (the body of qubes.USB): after the shared lifecycle bound the
 * device, ask for the single socket, send the handshake line on fd 0, hand fd 0 to usbip-host,
 * and stay until the connection ends — detected by the socket's hang-up (the peer closed, or
 * the stub shut the socket down on teardown / `usbip_sockfd -1`) or a termination signal, not
 * by polling. The lifecycle then gives the device back exactly once.
 */
import { writeSync } from "node:fs";
import { formatHandshake } from "../protocol/handshake.js";
import { GlueError, GlueErrorCode } from "../kernel-glue/errors.js";
import type { Sysfs } from "../kernel-glue/sysfs.js";
import { UsbipHost } from "../kernel-glue/usbip-host.js";
import { isSocket, watchHangup } from "../kernel-glue/system.js";
import { requestSingleSocket } from "../qrexec/agent.js";
import type { Logger } from "../shared/log.js";
import { runExport } from "./export-lifecycle.js";

export interface ExportKernelOptions {
  device: string;
  log: Logger;
  sysfs?: Sysfs;
}

export function exportKernel(opts: ExportKernelOptions): Promise<number> {
  return runExport({
    ...opts,
    precheck() {
      if (!isSocket(0)) throw new GlueError(GlueErrorCode.NOT_A_SOCKET, "fd 0 is not a socket: kernel mode needs the qrexec link as one socket (run as the qubes.USB service, or under qrexec-sim --link socket)");
    },
    async body(ctx) {
      requestSingleSocket();
      writeSync(0, formatHandshake({ devid: ctx.devid, speed: ctx.speed }));
      new UsbipHost(ctx.sysfs).setSockfd(ctx.busid, 0);
      await ctx.exported();
      const hangup = watchHangup(0);
      const why = await Promise.race([hangup.done.then(() => "link closed"), ctx.signal.then((s) => `signal ${s}`)]);
      hangup.stop();
      return why;
    },
  });
}
