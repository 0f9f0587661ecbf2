/**
 * `connect --tcp HOST:PORT --busid B`: import a device from any usbipd (Linux's, ours): send
 * OP_REQ_IMPORT, check OP_REP_IMPORT strictly, then attach it to vhci-hcd —
 *  kernel mode: the TCP socket itself is handed to vhci-hcd (what `usbip attach` does);
 *  relay mode: vhci-hcd gets a socketpair and the validating relay sits between it and TCP.
 * Then like `import`: STATEFILE holds the port, 'detach --statefile' ends it, every exit frees it.
 */
import net from "node:net";
import { release } from "node:os";
import { opStatusName } from "../protocol/constants.js";
import { InterruptedError, UsbipError, PeerDataError, WireCode, RuntimeCode } from "../protocol/errors.js";
import type { DeviceRecord } from "../protocol/messages.js";
import { kernelSupportsSuperPlus, speedToString } from "../protocol/speed.js";
import { attachExisting } from "../kernel-glue/handover.js";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { ensureModule } from "../kernel-glue/system.js";
import { Vhci, VdevStatus } from "../kernel-glue/vhci.js";
import { notifyAttached, terminationSignal, type TerminationSignal } from "../qrexec/agent.js";
import type { Logger } from "../shared/log.js";
import { lastVhciPort, setLastVhciPort } from "../shared/rundir.js";
import type { Policy } from "../protocol/policy.js";
import { importRelay } from "./import-relay.js";
import { writeImportState, type ImportState } from "./import-state.js";
import { formatHostPort } from "../protocol/host-port.js";
import { opExchange } from "./op-exchange.js";

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
export async function requestImport(host: string, port: number, busid: string, opts: { timeoutMs?: number; notice?: (t: string) => void; interrupt?: Promise<NodeJS.Signals> } = {}): Promise<{ sock: net.Socket; device: DeviceRecord; rest: Buffer }> {
  const where = formatHostPort(host, port);
  const { sock, reply: m } = await opExchange({ host, port, timeoutMs: opts.timeoutMs ?? 30_000, notice: opts.notice, interrupt: opts.interrupt }, { kind: "OP_REQ_IMPORT", busid }, "OP_REP_IMPORT");
  const fail = (e: UsbipError) => {
    sock.destroy();
    throw e;
  };
  if (m.kind !== "OP_REP_IMPORT") return fail(new PeerDataError(WireCode.UNEXPECTED_OP, `${m.kind} instead of OP_REP_IMPORT`));
  if (m.status !== 0 || m.device === undefined) return fail(new UsbipError(RuntimeCode.IMPORT, `${where} refused to export ${busid}: ${opStatusName(m.status)}${m.status === 2 ? " (device busy)" : m.status === 4 ? " (no such device)" : ""}`));
  if (m.device.busid !== busid) return fail(new UsbipError(RuntimeCode.IMPORT, `${where} answered for ${m.device.busid}, not ${busid}`));
  return { sock, device: m.device, rest: Buffer.alloc(0) }; // nothing may follow the reply (refused in opExchange)
}

export async function connectTcp(o: ConnectOptions): Promise<number> {
  const signal = terminationSignal();
  try {
    return await connectTcpUntilSignal(o, signal);
  } finally {
    signal.dispose();
  }
}

async function connectTcpUntilSignal(o: ConnectOptions, signal: TerminationSignal): Promise<number> {
  const sysfs = o.sysfs ?? new Sysfs();
  const where = formatHostPort(o.host, o.port);
  const { sock, device, rest } = await requestImport(o.host, o.port, o.busid, { notice: (t) => o.log.notice(t), interrupt: signal.promise });
  const devid = ((device.busnum << 16) | device.devnum) >>> 0;
  o.log.info(`${where} exports ${o.busid}: devid ${devid} speed ${device.speed} ${device.idVendor.toString(16).padStart(4, "0")}:${device.idProduct.toString(16).padStart(4, "0")}`);
  const remote = { remote: where, busid: o.busid };
  // said once the device is there, not before: an attach that fails has nothing to detach
  const announce = (port: number) => o.log.notice(`${o.busid} from ${where} attached on vhci port ${port} (${o.mode} mode); detach with: usbip-qrexec detach --statefile ${o.statefile}`);
  if (o.mode === "relay") {
    sock.on("error", () => {});
    return importRelay({ statefile: o.statefile, log: o.log, sysfs, trace: o.trace, policy: o.policy, link: { input: sock, output: sock, devid, speed: speedToString(device.speed), rest }, remote, onAttached: announce, signal });
  }
  await ensureModule(sysfs, "vhci-hcd");
  const vhci = new Vhci(sysfs);
  const speed = device.speed === 6 && !kernelSupportsSuperPlus(release()) ? 5 : device.speed;
  const port = await attachExisting(vhci, sock, devid, speed, lastVhciPort());
  setLastVhciPort(port);
  sock.destroy(); // vhci-hcd holds its own reference now
  o.log.info(`attached on vhci port ${port}`);
  let state: ImportState | undefined;
  try {
    state = writeImportState(port, o.statefile, remote, "kernel");
    const attached = await Promise.race([
      vhci.waitAttached(port, 30_000),
      signal.promise.then((s) => {
        throw new InterruptedError(s, "before the device enumerated");
      }),
    ]);
    o.log.info(`device enumerated as ${attached}`);
    notifyAttached();
    announce(port);
    // the kernel owns the connection: it ends when the port is freed (detach, or the server closed)
    let sig: string | undefined;
    signal.promise.then((s) => (sig = s), () => {});
    while (sig === undefined && vhci.port(port)?.status !== VdevStatus.NULL) await new Promise((r) => setTimeout(r, 300));
    o.log.info(`ending (${sig ? `signal ${sig}` : "port freed"})`);
    vhci.release(port);
    await vhci.waitDetached(port, attached, 10_000).catch((e: Error) => o.log.warn(e.message));
    return 0;
  } catch (e) {
    vhci.release(port);
    throw e;
  } finally {
    state?.remove();
  }
}
