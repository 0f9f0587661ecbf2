/**
 * `export DEVICE` in kernel mode (the body of qubes.USB): after the shared lifecycle bound the
 * device, ask for the single socket, send the handshake line on fd 0, hand fd 0 to usbip-host,
 * and stay until the connection ends — detected by the socket's hang-up (the peer closed, or
 * the stub shut the socket down on teardown / `usbip_sockfd -1`) or a termination signal, not
 * by polling. The lifecycle then gives the device back exactly once.
 */
import { sendHandshake } from "./send-handshake.js";
import { GlueError, GlueErrorCode } from "../kernel-glue/errors.js";
import type { Sysfs } from "../kernel-glue/sysfs.js";
import { UsbipHost } from "../kernel-glue/usbip-host.js";
import { isSocket, watchHangup } from "../kernel-glue/system.js";
import type { Socket } from "node:net";
import { handOverExisting } from "../kernel-glue/handover.js";
import { requestSingleSocket, type TerminationSignal } from "../qrexec/agent.js";
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
      await sendHandshake(0, ctx);
      new UsbipHost(ctx.sysfs).setSockfd(ctx.busid, 0);
      await ctx.exported();
      const hangup = watchHangup(0);
      const why = await Promise.race([hangup.done.then(() => "link closed"), ctx.signal.then((s) => `signal ${s}`)]);
      hangup.stop();
      return why;
    },
  });
}

/** serve --tcp, kernel mode: one imported connection, the accepted socket handed to usbip-host. */
export interface KernelSession {
  sock: Socket;
  busid: string;
  sysfs: Sysfs;
  log: Logger;
  /** the server's termination signal (no handlers of our own per connection) */
  signal: TerminationSignal;
  /** resolves when the server stops this session */
  stopped: Promise<void>;
  /** sends OP_REP_IMPORT with the device's record, once the stub has the socket */
  reply: (sysfs: Sysfs, busid: string) => Promise<void>;
  /** called once the device is exported (for the server's log) */
  onExported?: () => void;
}

export function serveKernelSession(o: KernelSession): Promise<number> {
  return runExport({
    device: o.busid,
    log: o.log,
    sysfs: o.sysfs,
    signal: o.signal,
    async body(ctx) {
      // the stub reads the socket from now on; the server stopped reading it after the request
      await handOverExisting(ctx.sysfs, `bus/usb/devices/${ctx.busid}/usbip_sockfd`, o.sock, (fd) => String(fd));
      await o.reply(ctx.sysfs, ctx.busid);
      await ctx.exported();
      o.onExported?.();
      // the stub owns the connection: it is over when the socket hangs up (the client closed,
      // or the stub shut it down on detach or an error); watched on a dup, nothing read
      const hangup = watchHangup(o.sock);
      const why = await Promise.race([hangup.done.then(() => "connection ended"), o.stopped.then(() => "stopped"), ctx.signal.then((s) => `signal ${s}`)]);
      hangup.stop();
      o.sock.destroy();
      return why;
    },
  });
}
