/** Running our CLI in the guest, and the checks every kernel-mode scenario ends with. */
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { check, diskOf, processesMatching, sh, sha256, sleep, start, tryRead, waitFor, type Spawned } from "./lib.js";
import { driverOf, interfaceDriver } from "./gadget.js";

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
export const CLI = path.join(repo, "bin/usbip-qrexec.js");
const VHCI = "/sys/devices/platform/vhci_hcd.0";

export function cli(args: string[], env: NodeJS.ProcessEnv = {}, cliPath = CLI): Spawned {
  return start(process.execPath, [cliPath, ...args], env);
}

/** export DEVICE ↔ import STATEFILE through qrexec-sim (kernel mode on both sides). */
export function kernelFlow(busid: string, statefile: string, extra: { importArgs?: string[]; exportArgs?: string[]; env?: NodeJS.ProcessEnv; link?: "socket" | "pipes" | "direct"; cli?: string; exportWrap?: string[] } = {}): Spawned {
  const node = process.execPath;
  const c = extra.cli ?? CLI;
  return cli(["qrexec-sim", "--link", extra.link ?? "socket", "--", node, c, "import", statefile, ...(extra.importArgs ?? []), "--", ...(extra.exportWrap ?? []), node, c, "export", busid, ...(extra.exportArgs ?? [])], extra.env, c);
}

/** Our processes (CLI from the tree or a package, the orphan guards and qrexec-sim's agents: $0 usbip-qrexec-guard / -agent). */
export function ourProcesses(): string[] {
  return processesMatching("usbip-qrexec");
}

export interface VhciPortLine {
  hub: string;
  port: number;
  status: number;
  local: string;
}

export function vhciPorts(): VhciPortLine[] {
  const out: VhciPortLine[] = [];
  // vhci_hcd.0 holds one status file per controller (status, status.1, …): ports beyond the
  // first controller's 16 are in the others
  for (const f of readdirSync(VHCI).filter((n) => /^status(\.\d+)?$/.test(n))) {
    for (const line of (tryRead(`${VHCI}/${f}`) ?? "").split("\n")) {
      const t = line.trim().split(/\s+/);
      if (t[0] !== "hs" && t[0] !== "ss") continue;
      out.push({ hub: t[0], port: Number(t[1]), status: Number(t[2]), local: t[6] ?? "0-0" });
    }
  }
  return out;
}

/** Wait for the statefile, then for the port it names to be USED with a device on the vhci bus. */
export async function waitImported(statefile: string, flow: Spawned): Promise<{ port: number; local: string }> {
  const { port } = await waitFor(`statefile ${statefile}`, () => {
    if (flow.child.exitCode !== null) throw new Error(`the flow ended early (exit ${flow.child.exitCode}): ${flow.stderr().trim()}`);
    const t = tryRead(statefile);
    return t === undefined || t === "" ? undefined : { port: Number(t) }; // port 0 is a port
  }, 60_000).catch((e: Error) => {
    throw new Error(`${e.message}; flow stderr: ${flow.stderr().trim()}`);
  });
  // the statefile is read again each time: a relay import that gives a port up names the next one
  return waitFor(`vhci port ${port} (or the port the statefile names next) in use`, () => {
    const now = Number(tryRead(statefile) ?? port);
    const p = vhciPorts().find((x) => x.port === now);
    return p && p.status === 6 && p.local !== "0-0" && existsSync(`/sys/bus/usb/devices/${p.local}`) ? { port: now, local: p.local } : undefined;
  }, 60_000).catch((e: Error) => {
    throw new Error(`${e.message}; flow stderr: ${flow.stderr().trim()}`);
  });
}

/** After a detach: port free, statefile gone, device back on its driver, no process left. */
export async function checkCleanedUp(o: { port: number; statefile: string; busid: string; interfaceDriver: string; flow: Spawned }): Promise<void> {
  const r = await Promise.race([o.flow.exited, new Promise<undefined>((res) => setTimeout(() => res(undefined), 30_000))]);
  check(r !== undefined, `the flow did not end within 30 s after detach; stderr: ${o.flow.stderr().trim()}`);
  check(vhciPorts().every((p) => p.status === 4), `vhci ports still used: ${JSON.stringify(vhciPorts().filter((p) => p.status !== 4))}`);
  check(!existsSync(o.statefile), `statefile ${o.statefile} still exists`);
  await waitFor(`${o.busid} back on its driver`, () => driverOf(o.busid) === "usb" && interfaceDriver(o.busid) === o.interfaceDriver, 20_000);
  check(!existsSync(`/run/usbip-qrexec/export-${o.busid}.pid`), "export pid file left behind");
  const left = ourProcesses();
  check(left.length === 0, `processes left: ${left.join(" | ")}`);
}

/**
 * After a kill -9 somewhere in a flow: the backend's device is back on usb-storage (the orphan
 * guard's give-back), no process of ours is left, no export pid file, and the backend's own disk
 * reads back the first `mib` MiB of `image`. `log()` is added to failure messages.
 */
export async function checkGivenBackAfterKill(busid: string, image: string, mib: number, log: () => string): Promise<void> {
  await waitFor(`${busid} back on usb-storage`, () => driverOf(busid) === "usb" && interfaceDriver(busid) === "usb-storage", 30_000).catch(() =>
    check(false, `${busid} not back on usb-storage (device driver ${driverOf(busid)}, interface driver ${interfaceDriver(busid)}); ${log()}`),
  );
  await waitFor("no process of ours left", () => ourProcesses().length === 0, 30_000).catch(() => check(false, `processes left: ${ourProcesses().join(" | ")}`));
  check(!existsSync(`/run/usbip-qrexec/export-${busid}.pid`), "export pid file left behind");
  const back = await waitFor("the backend's disk to come back", () => diskOf(busid), 30_000);
  check(sha256(back, mib << 20) === sha256(image), `after the kill the backend's disk ${back} does not read back the image`);
}

/**
 * `serve --tcp` offering the device model `spec`, checked in `usbip list -r` (`listed`), imported
 * with Debian's `usbip attach`, used by `use(local busid)`, detached with `usbip detach`: the
 * port frees and the server's session ends. Returns what `use` returned.
 */
export async function virtualOverTcp(spec: string, tcpPort: number, listed: RegExp[], use: (local: string) => Promise<string>): Promise<string> {
  const srv = cli(["serve", "--tcp", `127.0.0.1:${tcpPort}`, "--virtual", spec, "--verbose"]);
  try {
    await waitFor("serve listening", () => {
      if (srv.child.exitCode !== null) throw new Error(`serve exited ${srv.child.exitCode}: ${srv.stderr().trim()}`);
      return /listening on/.test(srv.stderr());
    }, 30_000);
    const list = sh("usbip", ["--tcp-port", String(tcpPort), "list", "-r", "127.0.0.1"]);
    check(listed.every((re) => re.test(list)), `usbip list -r: ${list}`);
    sh("usbip", ["--tcp-port", String(tcpPort), "attach", "-r", "127.0.0.1", "-b", "virtual-1"]);
    const { port, local } = await waitFor(`the attached ${spec}`, () => {
      const p = vhciPorts().find((x) => x.status === 6 && x.local !== "0-0" && existsSync(`/sys/bus/usb/devices/${x.local}`));
      return p && { port: p.port, local: p.local };
    }, 60_000);
    const note = await use(local);
    sh("usbip", ["detach", "-p", String(port)]);
    await waitFor("the port to be free", () => vhciPorts().every((p) => p.status === 4), 30_000);
    await waitFor("the session to end on the server", () => /virtual-1 session ended/.test(srv.stderr()), 30_000);
    return note;
  } finally {
    srv.child.kill("SIGTERM");
    await Promise.race([srv.exited, sleep(20_000)]);
  }
}

/**
 * The frontend relay's end line after `stops` stream stops: unlinks were seen, every CMD_UNLINK
 * got exactly one answer, and no URB was left outstanding. Returns a note for the TAP line.
 */
export function checkUnlinksAnswered(relayLog: string, stops: number): string {
  const m = /relay ended \([^)]*\): (\{[^}]*\}), (\d+) outstanding/.exec(relayLog);
  check(m !== null, `no relay statistics in the log: ${relayLog.trim()}`);
  const stats = JSON.parse(m[1]!) as { cmdUnlink: number; retUnlink: number; unlinksAnswered: number; unlinksTimedOut?: number };
  check(stats.cmdUnlink > 0, `no unlinks seen after ${stops} stops: ${m[1]}`);
  // answered once each: by the backend, by the relay's hold, or by the relay at the deadline (the backend's late answers are dropped, not counted)
  check(stats.retUnlink + stats.unlinksAnswered + (stats.unlinksTimedOut ?? 0) === stats.cmdUnlink, `unlinks not answered once each: ${m[1]}`);
  check(m[2] === "0", `${m[2]} URBs outstanding at the end`);
  return `${stats.cmdUnlink} unlinks, each answered once, 0 outstanding`;
}

/** The relay's trace of an iso stream, read by tshark: iso completions with their descriptors, nothing malformed. */
export function checkIsoTrace(file: string): string {
  const iso = sh("tshark", ["-r", file, "-Y", "usb.transfer_type == 0 && usb.urb_type == 'C' && usb.iso.numdesc > 0", "-T", "fields", "-e", "usb.iso.numdesc"], { timeoutMs: 180_000 }).trim().split("\n").filter(Boolean);
  check(iso.length > 100, `the trace has ${iso.length} iso completions with descriptors`);
  const bad = sh("tshark", ["-r", file, "-Y", "_ws.malformed || _ws.expert.severity == error"], { timeoutMs: 180_000 }).trim();
  check(bad === "", `malformed events in the trace: ${bad.split("\n").slice(0, 3).join(" | ")}`);
  return `trace: ${iso.length} iso completions decoded, none malformed`;
}
