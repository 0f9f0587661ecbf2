/**
 * `connect --tcp HOST:PORT --busid B`: import a device from any usbipd (Linux's, ours): send
 * OP_REQ_IMPORT, check OP_REP_IMPORT strictly, then attach it to vhci-hcd —
 *  kernel mode: the TCP socket itself is handed to vhci-hcd (what `usbip attach` does);
 *  relay mode: vhci-hcd gets a socketpair and the validating relay sits between it and TCP.
 * Then like `import`: STATEFILE holds the port, 'detach --statefile' ends it, every exit frees it.
 */
import net from "node:net";
import { release } from "node:os";
import { opStatusName, OpStatus, UsbSpeed } from "../protocol/constants.js";
import { UsbipError, PeerDataError, WireCode, RuntimeCode } from "../protocol/errors.js";
import type { DeviceRecord } from "../protocol/messages.js";
import { kernelSupportsSuperPlus, speedToString } from "../protocol/speed.js";
import { attachExisting } from "../kernel-glue/handover.js";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { watchHangup } from "../kernel-glue/system.js";
import { withTerminationSignal, type TerminationSignal } from "../qrexec/agent.js";
import type { Logger } from "../shared/log.js";
import type { Policy } from "../protocol/policy.js";
import { importRelay } from "./import-relay.js";
import { runImport } from "./import-lifecycle.js";
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
  if (m.status !== OpStatus.OK || m.device === undefined) return fail(new UsbipError(RuntimeCode.IMPORT, `${where} refused to export ${busid}: ${opStatusName(m.status)}${m.status === OpStatus.DEV_BUSY ? " (device busy)" : m.status === OpStatus.NODEV ? " (no such device)" : ""}`));
  if (m.device.busid !== busid) return fail(new UsbipError(RuntimeCode.IMPORT, `${where} answered for ${m.device.busid}, not ${busid}`));
  return { sock, device: m.device, rest: Buffer.alloc(0) }; // nothing may follow the reply (refused in opExchange)
}

export async function connectTcp(o: ConnectOptions): Promise<number> {
  return withTerminationSignal((signal) => connectTcpUntilSignal(o, signal));
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
  const speed = device.speed === UsbSpeed.SUPER_PLUS && !kernelSupportsSuperPlus(release()) ? UsbSpeed.SUPER : device.speed;
  return runImport({ statefile: o.statefile, log: o.log, sysfs, mode: "kernel", remote, signal, onAttached: announce }, async (vhci, after) => {
    const port = await attachExisting(vhci, sock, devid, speed, after);
    // the kernel owns the connection: it ends when the connection hangs up (the server closed
    // it, or detach: vhci-hcd shuts the socket down); watched on a dup, nothing read from it
    const hangup = watchHangup(sock);
    sock.destroy(); // vhci-hcd holds its own reference now
    return {
      port,
      untilEnd: (stop) => Promise.race([hangup.done.then(() => "connection closed"), stop.then((s) => `signal ${s}`)]).finally(() => hangup.stop()),
      abort: () => hangup.stop(),
    };
  });
}
