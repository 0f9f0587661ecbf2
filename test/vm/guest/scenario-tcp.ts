/**
 * Issue 5's TCP proofs against the real kernel and Linux's own usbip tools (Debian's usbip
 * package, from the host root):
 *  - `usbip list -r` lists what our `serve --tcp` offers, `usbip attach -r` imports our virtual
 *    disk into vhci-hcd: /dev/sdX reads back the image; `usbip detach` ends the session;
 *  - our `connect --tcp` imports a gadget disk from Debian's `usbipd` (kernel and relay mode):
 *    checksummed read, detach --statefile frees the port;
 *  - our `serve DEVICE` (usbip-host, TCP socket handed over; or served from userspace) and `connect`: the gadget disk
 *    reads back and is given back to usb-storage afterwards; and after `serve` is killed with
 *    SIGKILL mid-read, its orphan guard gives the device back.
 */
import { existsSync } from "node:fs";
import type { Scenario } from "./scenarios.js";
import { checkGadgetsGone, driverOf, interfaceDriver, makeImage, massStorage } from "./gadget.js";
import { check, diskOf, ended, modprobe, readLoop, sh, sha256, start, waitFor, type Spawned } from "./lib.js";
import { checkGivenBackAfterKill, cli, CLI, vhciPorts } from "./flows.js";

const MIB = 1 << 20;
const PORT = 3299;

async function listening(p: Spawned, what: string): Promise<void> {
  await waitFor(`${what} listening`, () => {
    if (p.child.exitCode !== null) throw new Error(`${what} exited ${p.child.exitCode}: ${p.stderr()}`);
    return /listening on/.test(p.stderr());
  }, 30_000);
}

async function stop(p: Spawned): Promise<void> {
  p.child.kill("SIGTERM");
  const r = await Promise.race([p.exited, new Promise<undefined>((res) => setTimeout(() => res(undefined), 20_000))]);
  check(r !== undefined, "the server did not exit within 20 s of SIGTERM");
}

function usedPort(): { port: number; local: string } | undefined {
  const p = vhciPorts().find((x) => x.status === 6 && x.local !== "0-0" && existsSync(`/sys/bus/usb/devices/${x.local}`));
  return p && { port: p.port, local: p.local };
}

/** connect STATEFILE …, the disk reads back `want`, detach --statefile, port free. */
async function connectAndRead(args: string[], want: string, mib: number): Promise<void> {
  const statefile = "/run/tmp/state-connect";
  const c = cli(["connect", ...args, statefile]);
  const { local } = await waitFor("the connected device on vhci", () => {
    if (c.child.exitCode !== null) throw new Error(`connect exited ${c.child.exitCode}: ${c.stderr()}`);
    return existsSync(statefile) ? usedPort() : undefined;
  }, 60_000);
  const disk = await waitFor(`a disk on ${local}`, () => diskOf(local), 60_000);
  check(sha256(disk, mib * MIB) === want, `${disk} does not read back the image`);
  const d = cli(["detach", "--statefile", statefile]);
  check((await d.exited).code === 0, `detach: ${d.stderr()}`);
  const r = await Promise.race([c.exited, new Promise<undefined>((res) => setTimeout(() => res(undefined), 30_000))]);
  check(r !== undefined && r.code === 0, `connect did not end cleanly: ${r?.code} ${c.stderr()}`);
  check(vhciPorts().every((p) => p.status === 4), "vhci ports still used");
  check(!existsSync(statefile), "statefile left behind");
}

export const tcpScenarios: Scenario[] = [
  {
    name: "serve --tcp: Debian's 'usbip list -r' lists our virtual devices, 'usbip attach -r' imports the virtual disk (reads back), 'usbip detach' ends it",
    async run() {
      modprobe("vhci-hcd", "usb-storage", "sd_mod");
      const img = "/run/tmp/tcp-virtual.img";
      makeImage(img, 8);
      const want = sha256(img);
      const srv = cli(["serve", "--tcp", `127.0.0.1:${PORT}`, "--virtual", `mass-storage:${img}`, "--virtual", "hid-keyboard", "--verbose"]);
      try {
        await listening(srv, "serve");
        const list = sh("usbip", ["--tcp-port", String(PORT), "list", "-r", "127.0.0.1"]);
        check(/virtual-1: .*1d6b:0104/.test(list) && /virtual-2: .*1d6b:0105/.test(list), `usbip list -r: ${list}`);
        check(/Mass Storage/i.test(list) || /08\/06\/50/.test(list), `no mass-storage interface in: ${list}`);
        sh("usbip", ["--tcp-port", String(PORT), "attach", "-r", "127.0.0.1", "-b", "virtual-1"]);
        const { port, local } = await waitFor("the attached virtual disk", () => usedPort(), 60_000);
        const disk = await waitFor(`a disk on ${local}`, () => diskOf(local), 60_000);
        check(sha256(disk, 8 * MIB) === want, `${disk} does not read back the image`);
        sh("usbip", ["detach", "-p", String(port)]);
        await waitFor("the port to be free", () => vhciPorts().every((p) => p.status === 4), 30_000);
        await waitFor("the session to end on the server", () => /virtual-1 session ended/.test(srv.stderr()), 30_000);
      } finally {
        await stop(srv);
      }
    },
  },
  {
    name: "connect --tcp imports a gadget disk from Debian's usbipd, kernel and relay mode (checksummed), detach cleans up",
    async run() {
      modprobe("usbip-host", "vhci-hcd");
      const img = "/run/tmp/tcp-usbipd.img";
      makeImage(img, 8);
      const want = sha256(img);
      const g = await massStorage("tcpd", "dummy_udc.0", img);
      const usbipd = start("usbipd", ["--tcp-port", String(PORT)]);
      try {
        await waitFor("usbipd listening", () => sh("sh", ["-c", `cat /proc/net/tcp /proc/net/tcp6 2>/dev/null`]).includes(`:${PORT.toString(16).toUpperCase().padStart(4, "0")} `), 20_000);
        sh("usbip", ["bind", "-b", g.busid]);
        await connectAndRead(["--tcp", `127.0.0.1:${PORT}`, "--busid", g.busid], want, 8);
        await waitFor("usbip-host to offer the device again", () => sh("cat", [`/sys/bus/usb/devices/${g.busid}/usbip_status`]).trim() === "1", 30_000);
        await connectAndRead(["--tcp", `127.0.0.1:${PORT}`, "--busid", g.busid, "--mode", "relay"], want, 8);
        await waitFor("usbip-host to offer the device again", () => sh("cat", [`/sys/bus/usb/devices/${g.busid}/usbip_status`]).trim() === "1", 30_000);
        sh("usbip", ["unbind", "-b", g.busid]);
      } finally {
        usbipd.child.kill("SIGTERM");
        await usbipd.exited;
        g.remove();
      }
      checkGadgetsGone();
    },
  },
  {
    name: "usbip(8) forms: serve --tcp PORT (every address), list -r, attach -r -b, port (remote, busid, statefile), detach -p frees the port and ends the attach",
    async run() {
      modprobe("vhci-hcd", "usb-storage", "sd_mod");
      const img = "/run/tmp/tcp-forms.img";
      makeImage(img, 8);
      const want = sha256(img);
      const srv = cli(["serve", "--tcp", String(PORT), "--virtual", `mass-storage:${img}`]);
      const statefile = "/run/tmp/state-attach";
      try {
        await listening(srv, "serve");
        check(new RegExp(`listening on (\\[::\\]|0\\.0\\.0\\.0):${PORT}$`, "m").test(srv.stderr()), `serve --tcp ${PORT} does not say it listens on every address: ${srv.stderr()}`);
        const list = sh(process.execPath, [CLI, "list", "-r", "127.0.0.1", "--tcp-port", String(PORT)]);
        check(/^ - 127\.0\.0\.1$/m.test(list) && /virtual-1: unknown vendor : unknown product \(1d6b:0104\)/.test(list) && /: {2}0 - \(08\/06\/50\)/.test(list), `list -r: ${list}`);
        const a = cli(["attach", "-r", "127.0.0.1", "--tcp-port", String(PORT), "-b", "virtual-1", statefile]);
        const { port, local } = await waitFor("the attached virtual disk", () => {
          if (a.child.exitCode !== null) throw new Error(`attach exited ${a.child.exitCode}: ${a.stderr()}`);
          return existsSync(statefile) ? usedPort() : undefined;
        }, 60_000);
        const disk = await waitFor(`a disk on ${local}`, () => diskOf(local), 60_000);
        check(sha256(disk, 8 * MIB) === want, `${disk} does not read back the image`);
        await waitFor("attach to announce the port", () => new RegExp(`attached on vhci port ${port} .*detach with: usbip-qrexec detach --statefile ${statefile}`).test(a.stderr()), 10_000);
        const ports = JSON.parse(sh(process.execPath, [CLI, "port", "--json"])) as { port: number; localBusid: string; mode: string; remote: string; busid: string; statefile: string; id: string }[];
        check(ports.length === 1, `port --json: ${JSON.stringify(ports)}`);
        const p = ports[0]!;
        check(p.port === port && p.localBusid === local && p.mode === "kernel" && p.remote === `127.0.0.1:${PORT}` && p.busid === "virtual-1" && p.statefile === statefile && p.id === "1d6b:0104", `port --json: ${JSON.stringify(p)}`);
        const table = sh(process.execPath, [CLI, "port"]);
        check(new RegExp(`^${String(port).padStart(2, "0")} +480 +${local.replace(/\./g, "\\.")} +1d6b:0104 +kernel +127\\.0\\.0\\.1:${PORT} +virtual-1 +${statefile}$`, "m").test(table), `port: ${table}`);
        sh(process.execPath, [CLI, "detach", "-p", String(port)]);
        const code = await ended(a, 30_000, "attach after detach -p");
        check(code === 0, `attach exited ${a.child.exitCode}: ${a.stderr()}`);
        check(vhciPorts().every((x) => x.status === 4), "vhci ports still used");
        check(!existsSync(statefile), "statefile left behind");
        check(sh(process.execPath, [CLI, "port"]).trim() === "no imported devices", "port still lists a device");
      } finally {
        await stop(srv);
      }
    },
  },
  { name: "serve DEVICE (usbip-host, the TCP socket handed to the stub) and connect: the gadget disk reads back, then is given back to usb-storage", run: () => serveDevice("kernel") },
  { name: "serve DEVICE --mode userspace (usbfs) and connect: the gadget disk reads back, then is given back to usb-storage", run: () => serveDevice("userspace") },
  ...(["kernel", "userspace"] as const).map((mode) => ({
    name: `serve DEVICE --mode ${mode} killed with SIGKILL during a read: connect ends, port free, its guard gives the device back to usb-storage, no process left, the disk reads back`,
    run: () => killServer(mode),
  })),
];

async function killServer(mode: "kernel" | "userspace"): Promise<void> {
  modprobe("usbip-host", "vhci-hcd");
  const img = "/run/tmp/tcp-kill.img";
  makeImage(img, 32);
  const g = await massStorage("tcpk", "dummy_udc.0", img);
  const statefile = "/run/tmp/state-tcp-kill";
  const srv = cli(["serve", "--tcp", `127.0.0.1:${PORT}`, g.busid, "--mode", mode, "--verbose"]);
  let reader: Spawned | undefined;
  try {
    await listening(srv, "serve");
    const c = cli(["connect", "--tcp", `127.0.0.1:${PORT}`, "--busid", g.busid, statefile]);
    const { local } = await waitFor("the connected device on vhci", () => {
      if (c.child.exitCode !== null) throw new Error(`connect exited ${c.child.exitCode}: ${c.stderr()}`);
      return existsSync(statefile) ? usedPort() : undefined;
    }, 60_000);
    const disk = await waitFor(`a disk on ${local}`, () => diskOf(local), 60_000);
    reader = readLoop(disk, 32);
    await new Promise((r) => setTimeout(r, 1500)); // the read under way
    srv.child.kill("SIGKILL");
    await ended(c, 30_000, "connect after the server was killed");
    check(vhciPorts().every((p) => p.status === 4), `vhci ports still used: ${JSON.stringify(vhciPorts().filter((p) => p.status !== 4))}`);
    check(!existsSync(statefile), "statefile left behind");
    await ended(reader, 60_000, "the disk reader");
    await checkGivenBackAfterKill(g.busid, img, 32, () => `serve: ${srv.stderr().trim()}`);
  } finally {
    reader?.child.kill("SIGKILL");
    srv.child.kill("SIGKILL");
    g.remove();
  }
  checkGadgetsGone();
}

async function serveDevice(mode: "kernel" | "userspace"): Promise<void> {
  modprobe("usbip-host", "vhci-hcd");
  const img = "/run/tmp/tcp-serve-dev.img";
  makeImage(img, 8);
  const want = sha256(img);
  const g = await massStorage("tcps", "dummy_udc.0", img);
  const srv = cli(["serve", "--tcp", `127.0.0.1:${PORT}`, g.busid, "--mode", mode, "--verbose"]);
  try {
    await listening(srv, "serve");
    await connectAndRead(["--tcp", `127.0.0.1:${PORT}`, "--busid", g.busid], want, 8);
    await waitFor(`${g.busid} back on usb-storage`, () => driverOf(g.busid) === "usb" && interfaceDriver(g.busid) === "usb-storage", 30_000);
  } finally {
    await stop(srv);
    g.remove();
  }
  checkGadgetsGone();
}
