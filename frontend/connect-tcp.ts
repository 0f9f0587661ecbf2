/**
 * `connect --tcp HOST:PORT --busid B`: import a device from any usbipd (Linux's, ours): send
 * OP_REQ_IMPORT, check OP_REP_IMPORT strictly, then attach it to vhci-hcd —
 *  kernel mode: the TCP socket itself is handed to vhci-hcd (what `usbip attach` does);
 *  relay mode: vhci-hcd gets a socketpair and the validating relay sits between it and TCP.
 * Then like `import`: STATEFILE holds the port, 'detach --statefile' ends it, every exit frees it.
 */
import net from "node:net";
import { release } from "node:os";
import { rmSync, writeFileSync } from "node:fs";
import { opStatusName } from "../protocol/constants.js";
import { UsbipError } from "../protocol/errors.js";
import { encode } from "../protocol/encoder.js";
import type { DeviceRecord } from "../protocol/messages.js";
import { ServerStreamDecoder } from "../protocol/server-decoder.js";
import { kernelSupportsSuperPlus, speedToString } from "../protocol/speed.js";
import { attachExisting } from "../kernel-glue/handover.js";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { ensureModule } from "../kernel-glue/system.js";
import { Vhci } from "../kernel-glue/vhci.js";
import { notifyAttached, terminationSignal } from "../qrexec/agent.js";
import type { Logger } from "../qrexec/log.js";
import { stopReading } from "../qrexec/stop-reading.js";
import { lastVhciPort, setLastVhciPort } from "../qrexec/rundir.js";
import type { Policy } from "../protocol/policy.js";
import { importRelay } from "./import-relay.js";

export interface ConnectOptions {
  host: string;
  port: number;
  busid: string;
  mode: "kernel" | "relay";
  statefile: string;
  log: Logger;
  sysfs?: Sysfs;
  trace?: string;
  policy?: Policy;
}

/** Connect and import: the socket (reading stopped) and the device record. */
export async function requestImport(host: string, port: number, busid: string, timeoutMs = 30_000): Promise<{ sock: net.Socket; device: DeviceRecord; rest: Buffer }> {
  const sock = net.connect({ host, port });
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", () => resolve());
    sock.once("error", (e: NodeJS.ErrnoException) => reject(new UsbipError("USBIP_ERR_CONNECT", `cannot connect to ${host}:${port}: ${e.code ?? e.message}`)));
  });
  for (const b of encode({ kind: "OP_REQ_IMPORT", busid })) sock.write(b);
  const dec = new ServerStreamDecoder({ phase: "op" });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new UsbipError("USBIP_ERR_TIMEOUT", `no OP_REP_IMPORT from ${host}:${port} within ${timeoutMs / 1000} s`)), timeoutMs);
    const done = (r: Error | DeviceRecord) => {
      clearTimeout(timer);
      sock.off("data", onData);
      stopReading(sock);
      if (r instanceof Error) {
        sock.destroy();
        reject(r);
      } else resolve({ sock, device: r, rest: Buffer.alloc(0) }); // nothing may follow the reply (refused above)
    };
    const onData = (c: Buffer) => {
      dec.push(c);
      const m = dec.next();
      if (dec.error) return done(new UsbipError(dec.error.code, `malformed reply from ${host}:${port} at byte ${dec.error.offset}: ${dec.error.rule}`));
      if (m === null) return;
      if (m.kind !== "OP_REP_IMPORT") return done(new UsbipError("USBIP_ERR_UNEXPECTED_OP", `${m.kind} instead of OP_REP_IMPORT`));
      if (m.status !== 0 || m.device === undefined) return done(new UsbipError("USBIP_ERR_IMPORT", `${host}:${port} refused to export ${busid}: ${opStatusName(m.status)}${m.status === 2 ? " (device busy)" : m.status === 4 ? " (no such device)" : ""}`));
      if (m.device.busid !== busid) return done(new UsbipError("USBIP_ERR_IMPORT", `${host}:${port} answered for ${m.device.busid}, not ${busid}`));
      if (dec.buffered > 0) return done(new UsbipError("USBIP_ERR_PROTOCOL", "data after OP_REP_IMPORT before any request"));
      done(m.device);
    };
    sock.on("data", onData);
    sock.once("end", () => done(new UsbipError("USBIP_ERR_CLOSED", `${host}:${port} closed the connection before answering`)));
    sock.resume();
  });
}

export async function connectTcp(o: ConnectOptions): Promise<number> {
  const sysfs = o.sysfs ?? new Sysfs();
  const { sock, device, rest } = await requestImport(o.host, o.port, o.busid);
  process.stderr.write(`usbip-qrexec connect: importing ${o.busid} from ${o.host}:${o.port} (${o.mode} mode); detach with: usbip-qrexec detach --statefile ${o.statefile}\n`);
  const devid = ((device.busnum << 16) | device.devnum) >>> 0;
  o.log.info(`${o.host}:${o.port} exports ${o.busid}: devid ${devid} speed ${device.speed} ${device.idVendor.toString(16).padStart(4, "0")}:${device.idProduct.toString(16).padStart(4, "0")}`);
  if (o.mode === "relay") {
    sock.on("error", () => {});
    return importRelay({ statefile: o.statefile, log: o.log, sysfs, trace: o.trace, policy: o.policy, link: { input: sock, output: sock, devid, speed: speedToString(device.speed), rest } });
  }
  await ensureModule(sysfs, "vhci-hcd");
  const vhci = new Vhci(sysfs);
  const signal = terminationSignal();
  const speed = device.speed === 6 && !kernelSupportsSuperPlus(release()) ? 5 : device.speed;
  const port = await attachExisting(vhci, sock, devid, speed, lastVhciPort());
  setLastVhciPort(port);
  sock.destroy(); // vhci-hcd holds its own reference now
  o.log.info(`attached on vhci port ${port}`);
  let statefileWritten = false;
  try {
    writeFileSync(o.statefile, `${port}\n`);
    statefileWritten = true;
    const attached = await Promise.race([
      vhci.waitAttached(port, 30_000),
      signal.promise.then((s) => {
        throw new UsbipError("USBIP_ERR_INTERRUPTED", `interrupted by ${s} before the device enumerated`);
      }),
    ]);
    o.log.info(`device enumerated as ${attached}`);
    notifyAttached();
    // the kernel owns the connection: it ends when the port is freed (detach, or the server closed)
    let sig: string | undefined;
    signal.promise.then((s) => (sig = s), () => {});
    while (sig === undefined && vhci.port(port)?.status !== 4) await new Promise((r) => setTimeout(r, 300));
    o.log.info(`ending (${sig ? `signal ${sig}` : "port freed"})`);
    vhci.release(port);
    await vhci.waitDetached(port, attached, 10_000).catch((e: Error) => o.log.warn(e.message));
    return 0;
  } catch (e) {
    vhci.release(port);
    throw e;
  } finally {
    if (statefileWritten) rmSync(o.statefile, { force: true });
  }
}
