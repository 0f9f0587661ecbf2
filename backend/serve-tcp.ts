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
import { recordFromSysfs } from "../kernel-glue/device-record.js";
import { resolveDevice } from "../kernel-glue/usb-devices.js";
import type { Logger } from "../shared/log.js";
import { stopReading } from "../shared/stop-reading.js";
import { withTerminationSignal, type TerminationSignal } from "../qrexec/agent.js";
import { formatHostPort } from "../protocol/host-port.js";
import { openVirtual } from "./export-virtual.js";
import { serveKernelSession } from "./export-kernel.js";
import { serveUserspaceSession } from "./export-userspace.js";

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
  // one set of signal handlers for the server and all its sessions, disposed on the way out
  return withTerminationSignal((signal) => serveUntilSignal(o, signal));
}

async function serveUntilSignal(o: ServeOptions, signal: TerminationSignal): Promise<number> {
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
  /** each running import session: how to stop it, and its end */
  const sessions = new Map<() => void, Promise<void>>();
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
    let stop = () => {};
    const stopped = new Promise<void>((r) => (stop = r));
    const session = serveSession(sock, e, peer, stopped).finally(() => {
      e.busy = false;
      sessions.delete(stop);
    });
    sessions.set(stop, session);
    await session;
  }

  const reply = (sock: net.Socket, device: ListedDevice) => send(sock, { kind: "OP_REP_IMPORT", status: OpStatus.OK, device });

  async function serveSession(sock: net.Socket, e: Entry, peer: string, stopped: Promise<void>): Promise<void> {
    if (e.virtual) return serveUrbs(sock, e, peer, e.virtual, stopped);
    if (o.deviceMode === "userspace") return serveUserspaceSession({ busid: e.busid, sysfs, log: o.log, signal, sock, serve: (dev) => serveUrbs(sock, e, peer, dev, stopped) });
    await serveKernelSession({ sock, busid: e.busid, sysfs, log: o.log, signal, stopped, reply: (s, b) => reply(sock, recordFromSysfs(s, b)), onExported: () => o.log.info(`${peer}: imported ${e.busid} (kernel, usbip-host)`) });
  }

  /** A device served by the URB server on the socket (a model, or libusb in userspace mode). */
  async function serveUrbs(sock: net.Socket, e: Entry, peer: string, device: UrbDevice, stopped: Promise<void>): Promise<void> {
    await reply(sock, e.record());
    o.log.info(`${peer}: imported ${e.busid} (${e.virtual ? "virtual" : "userspace, libusb"})`);
    const s = new UrbServer(device, sock, sock);
    s.start();
    void stopped.then(() => s.stop());
    const r = await s.done;
    if (r.violation) o.log.warn(`${peer}: ${e.busid}: refused a message: ${formatViolation(r.violation)}`);
    o.log.info(`${peer}: ${e.busid} session ended (${r.reason}): ${JSON.stringify(r.stats)}`);
  }

  await new Promise<void>((resolve, reject) => {
    const where = o.host === undefined ? `port ${o.port} (every address)` : formatHostPort(o.host, o.port);
    server.once("error", (e: NodeJS.ErrnoException) => reject(new UsbipError(RuntimeCode.LISTEN, `cannot listen on ${where}: ${e.code === "EADDRINUSE" ? "the port is in use" : e.code === "EACCES" ? "permission denied" : e.code === "EADDRNOTAVAIL" ? "no such local address" : (e.code ?? e.message)}`)));
    server.listen(o.port, o.host, () => resolve());
  });
  const addr = server.address() as net.AddressInfo;
  o.log.info(`serving ${entries.map((e) => e.busid).join(", ")}`);
  o.onListening?.(addr.port, formatHostPort(addr.address, addr.port));
  const sig = await signal.promise;
  o.log.info(`${sig}: closing`);
  server.close();
  // stop every session and wait for each to give its device back (bounded: a stuck one is named)
  for (const stop of sessions.keys()) stop();
  const ended = await Promise.race([Promise.allSettled(sessions.values()).then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 20_000).unref())]);
  if (!ended) o.log.warn(`${sessions.size} session(s) did not end within 20 s of ${sig}`);
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
