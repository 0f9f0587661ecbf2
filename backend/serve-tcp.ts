/**
 * `serve --tcp HOST:PORT`: a usbipd-compatible server (tools/usb/usbip/src/usbipd.c). Each
 * connection sends one OP_REQ_DEVLIST (answered with every device, then closed) or one
 * OP_REQ_IMPORT (answered with the device record, then the URB phase on the same socket).
 * Devices: virtual models (served by device/urb-server.ts, busids virtual-1, virtual-2, …)
 * and local devices in kernel mode (bound to usbip-host, the TCP socket handed to the stub, given
 * back when the connection ends) or userspace mode (libusb, served by the URB server). One connection per device: a busy device is refused with
 * ST_DEV_BUSY, an unknown busid with ST_NODEV, like usbipd. The OP request is untrusted input:
 * decoded strictly; a malformed one closes the connection with the rule logged.
 */
import net from "node:net";
import { ClientStreamDecoder } from "../protocol/client-decoder.js";
import { OpStatus } from "../protocol/constants.js";
import { encode } from "../protocol/encoder.js";
import { UsbipError, PeerDataError, WireCode, GlueCode, formatViolation, RuntimeCode, UsageError } from "../protocol/errors.js";
import type { ClientMessage, ListedDevice, Message } from "../protocol/messages.js";
import type { UrbDevice } from "../device/urb-device.js";
import { UrbServer } from "../device/urb-server.js";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { SdevStatus, UsbipHost } from "../kernel-glue/usbip-host.js";
import { recordFromSysfs } from "../kernel-glue/device-record.js";
import { handOverExisting } from "../kernel-glue/handover.js";
import { describeDevice, resolveDevice } from "../kernel-glue/usb-devices.js";
import { isSpeedString } from "../protocol/speed.js";
import { LibusbDevice } from "./libusb-device.js";
import type { Logger } from "../shared/log.js";
import { stopReading } from "../shared/stop-reading.js";
import { terminationSignal } from "../qrexec/agent.js";
import { formatHostPort } from "../protocol/host-port.js";
import { openVirtual } from "./export-virtual.js";
import { checkNotExported, runExport } from "./export-lifecycle.js";
import { guardExport } from "../kernel-glue/orphan-guard.js";
import { removeExportPid, writeExportPid } from "../shared/rundir.js";

interface Entry {
  busid: string;
  record(): ListedDevice;
  busy: boolean;
  virtual?: UrbDevice;
}

export interface ServeOptions {
  /** where to listen; undefined: every address (IPv6 and IPv4), as usbipd */
  host: string | undefined;
  port: number;
  virtual: string[];
  devices: string[];
  /** how DEVICE arguments are served: handed to usbip-host (kernel) or through libusb (userspace) */
  deviceMode?: "kernel" | "userspace";
  log: Logger;
  sysfs?: Sysfs;
  /** called once listening, with the bound port (0 in `port` picks a free one) and the address as HOST:PORT */
  onListening?: (port: number, where: string) => void;
}

export async function serveTcp(o: ServeOptions): Promise<number> {
  const sysfs = o.sysfs ?? new Sysfs();
  const entries: Entry[] = [];
  for (const [i, spec] of o.virtual.entries()) {
    const name = `virtual-${i + 1}`;
    const dev = await openVirtual(spec, ((0x7f << 16) | (i + 1)) >>> 0, name);
    entries.push({ busid: name, record: () => dev.record(), busy: false, virtual: dev });
  }
  for (const spec of o.devices) {
    const busid = resolveDevice(sysfs, spec);
    recordFromSysfs(sysfs, busid); // fails now, with a clear message, if it cannot be described
    entries.push({ busid, record: () => recordFromSysfs(sysfs, busid), busy: false });
  }
  if (entries.length === 0) throw new UsageError("nothing to serve: give DEVICE arguments and/or --virtual SPEC");
  const sessions = new Set<() => void>();
  const server = net.createServer({ pauseOnConnect: true }, (sock) => void connection(sock).catch((e: Error) => {
    o.log.warn(`connection from ${sock.remoteAddress}: ${e.message}`);
    sock.destroy();
  }));

  async function connection(sock: net.Socket): Promise<void> {
    const peer = `${sock.remoteAddress}:${sock.remotePort}`;
    const req = await readRequest(sock);
    if (req.kind === "OP_REQ_DEVLIST") {
      o.log.info(`${peer}: device list`);
      const devices = entries.filter((e) => !e.busy).map((e) => e.record());
      await send(sock, { kind: "OP_REP_DEVLIST", status: OpStatus.OK, devices });
      sock.end();
      return;
    }
    if (req.kind !== "OP_REQ_IMPORT") throw new PeerDataError(WireCode.UNEXPECTED_OP, `${req.kind} before any OP request`);
    const e = entries.find((x) => x.busid === req.busid);
    if (e === undefined || e.busy) {
      o.log.warn(`${peer}: import of ${req.busid} refused: ${e === undefined ? "no such device" : "busy"}`);
      await send(sock, { kind: "OP_REP_IMPORT", status: e === undefined ? OpStatus.NODEV : OpStatus.DEV_BUSY });
      sock.end();
      return;
    }
    e.busy = true;
    try {
      if (e.virtual) await serveVirtual(sock, e, peer, e.virtual);
      else if (o.deviceMode === "userspace") await serveUserspace(sock, e, peer);
      else await serveKernel(sock, e, peer);
    } finally {
      e.busy = false;
    }
  }

  async function serveUserspace(sock: net.Socket, e: Entry, peer: string): Promise<void> {
    const info = describeDevice(sysfs, e.busid);
    if (!isSpeedString(info.speed)) throw new UsbipError(GlueCode.BAD_DEVICE, `${e.busid}: unsupported speed "${info.speed}"`);
    checkNotExported(sysfs, e.busid);
    // killed with SIGKILL mid-session, the guard resets the device and gives its interfaces back
    const guard = guardExport(e.busid);
    let dev: LibusbDevice;
    try {
      dev = LibusbDevice.open(info.busnum, info.devnum, e.busid, info.speed, o.log);
    } catch (err) {
      guard.disarm();
      throw err;
    }
    writeExportPid(e.busid);
    void dev.gone.then(() => {
      o.log.warn(`${e.busid} is gone (unplugged): closing the connection`);
      sock.destroy();
    });
    try {
      await serveVirtual(sock, e, peer, dev);
    } finally {
      await dev.close();
      removeExportPid(e.busid);
      guard.disarm();
    }
  }

  async function serveVirtual(sock: net.Socket, e: Entry, peer: string, device: UrbDevice): Promise<void> {
    await send(sock, { kind: "OP_REP_IMPORT", status: OpStatus.OK, device: e.record() });
    o.log.info(`${peer}: imported ${e.busid} (${e.virtual ? "virtual" : "userspace, libusb"})`);
    const s = new UrbServer(device, sock, sock);
    const stop = () => void s.stop();
    sessions.add(stop);
    s.start();
    const r = await s.done;
    sessions.delete(stop);
    if (r.violation) o.log.warn(`${peer}: ${e.busid}: refused a message: ${formatViolation(r.violation)}`);
    o.log.info(`${peer}: ${e.busid} session ended (${r.reason}): ${JSON.stringify(r.stats)}`);
  }

  async function serveKernel(sock: net.Socket, e: Entry, peer: string): Promise<void> {
    await runExport({
      device: e.busid,
      log: o.log,
      sysfs,
      async body(ctx) {
        // the stub reads the socket from now on; we have stopped reading it (readRequest)
        await handOverExisting(ctx.sysfs, `bus/usb/devices/${ctx.busid}/usbip_sockfd`, sock, (fd) => String(fd));
        await send(sock, { kind: "OP_REP_IMPORT", status: OpStatus.OK, device: recordFromSysfs(ctx.sysfs, ctx.busid) });
        await ctx.exported();
        o.log.info(`${peer}: imported ${ctx.busid} (kernel, usbip-host)`);
        const host = new UsbipHost(ctx.sysfs);
        let stopped: string | undefined;
        const stop = () => (stopped = "stopped");
        sessions.add(stop);
        // the stub owns the connection: it is over when usbip_status leaves SDEV_ST_USED
        while (stopped === undefined && host.status(ctx.busid) === SdevStatus.USED) await new Promise((r) => setTimeout(r, 300));
        sessions.delete(stop);
        sock.destroy();
        return stopped ?? "connection ended";
      },
    });
  }

  await new Promise<void>((resolve, reject) => {
    const where = o.host === undefined ? `port ${o.port} (every address)` : formatHostPort(o.host, o.port);
    server.once("error", (e: NodeJS.ErrnoException) => reject(new UsbipError(RuntimeCode.LISTEN, `cannot listen on ${where}: ${e.code === "EADDRINUSE" ? "the port is in use" : e.code === "EACCES" ? "permission denied" : e.code === "EADDRNOTAVAIL" ? "no such local address" : (e.code ?? e.message)}`)));
    server.listen(o.port, o.host, () => resolve());
  });
  const addr = server.address() as net.AddressInfo;
  o.log.info(`serving ${entries.map((e) => e.busid).join(", ")}`);
  o.onListening?.(addr.port, formatHostPort(addr.address, addr.port));
  const sig = await terminationSignal().promise;
  o.log.info(`${sig}: closing`);
  server.close();
  for (const s of sessions) s();
  await new Promise((r) => setTimeout(r, 500));
  for (const e of entries) await e.virtual?.close();
  return 0;
}

/** Read exactly one OP request, then stop reading (a kernel may take the socket over next). */
function readRequest(sock: net.Socket): Promise<ClientMessage> {
  return new Promise((resolve, reject) => {
    const dec = new ClientStreamDecoder({ phase: "op" });
    const timer = setTimeout(() => finish(new UsbipError(GlueCode.TIMEOUT, "no OP request within 30 s")), 30_000);
    const finish = (r: ClientMessage | Error) => {
      clearTimeout(timer);
      sock.off("data", onData);
      stopReading(sock);
      if (r instanceof Error) reject(r);
      else if (dec.buffered > 0) reject(new PeerDataError(WireCode.TRAILING_DATA, "data after the OP request before the reply"));
      else resolve(r);
    };
    const onData = (c: Buffer) => {
      dec.push(c);
      const m = dec.next();
      if (m !== null) finish(m);
      else if (dec.error) finish(new PeerDataError(dec.error.code, `malformed OP request: ${formatViolation(dec.error)}`));
    };
    sock.on("data", onData);
    sock.once("end", () => finish(new UsbipError(RuntimeCode.CLOSED, "closed before an OP request")));
    sock.once("error", (e) => finish(e));
    sock.resume();
  });
}

function send(sock: net.Socket, m: Message): Promise<void> {
  return new Promise((resolve, reject) => {
    const bufs = encode(m);
    bufs.forEach((b, i) => (i < bufs.length - 1 ? sock.write(b) : sock.write(b, (e) => (e ? reject(e) : resolve()))));
  });
}
