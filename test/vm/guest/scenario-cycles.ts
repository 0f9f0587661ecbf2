/**
 * Issue 6: 100 attach/detach cycles in one boot, alternating modes — kernel, relay (both
 * sides), userspace export, and `connect --tcp` (kernel and relay) to a long-lived
 * `serve --tcp` of a virtual disk — and detaching alternately from the frontend and the backend.
 * Every cycle reads the first MiB back. After the run: 0 used vhci ports, 0 statefiles, no
 * process of ours but the server, the server's open-fd count what it was after its first
 * session, the gadget disk and the virtual disk still read back byte-identical.
 */
import { existsSync, readdirSync } from "node:fs";
import type { Scenario } from "./scenarios.js";
import { checkGadgetsGone, driverOf, interfaceDriver, makeImage, massStorage } from "./gadget.js";
import { check, diskOf, ended, sha256, waitFor, type Spawned } from "./lib.js";
import { cli, kernelFlow, ourProcesses, vhciPorts, waitImported } from "./flows.js";

const CYCLES = Number(process.env.VM_CYCLES ?? 100);
// cycle i's kind is i % 4 (kernel, relay, userspace, tcp) and its detach side / TCP mode (i >> 2) % 2:
// 8 cycles run each of the 8 kinds once, and the second TCP session is what the server's fds after
// the first are compared against
const MIN_CYCLES = 8;
const MIB = 1 << 20;
const TCP_PORT = 3251;

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

async function cycles(): Promise<string> {
  if (!Number.isInteger(CYCLES) || CYCLES < MIN_CYCLES) throw new Error(`VM_CYCLES=${process.env.VM_CYCLES}: at least ${MIN_CYCLES} cycles are needed to run each kind once and compare the server's fds across two TCP sessions`);
  const img = "/run/tmp/cycle.img";
  const vimg = "/run/tmp/cycle-virtual.img";
  makeImage(img, 8);
  makeImage(vimg, 8);
  const want = sha256(img);
  const wantFirst = sha256(img, MIB);
  const vwant = sha256(vimg);
  const vwantFirst = sha256(vimg, MIB);
  const g = await massStorage("cycle", "dummy_udc.0", img);
  const server = cli(["serve", "--tcp", `127.0.0.1:${TCP_PORT}`, "--virtual", `mass-storage:${vimg}`, "--verbose"]);
  const serverPid = server.child.pid!;
  const notServer = () => ourProcesses().filter((p) => Number(p.split(" ")[0]) !== serverPid);
  let fdBaseline: number | undefined;
  let tcpSessions = 0;
  const counts: Record<string, number> = {};
  const t0 = Date.now();
  try {
    await waitFor("the server listening", () => {
      if (server.child.exitCode !== null) throw new Error(`serve exited: ${server.stderr()}`);
      return /listening on/.test(server.stderr());
    }, 30_000);
    await waitFor("the backend's disk", () => diskOf(g.busid), 20_000);
    for (let i = 0; i < CYCLES; i++) {
      const kind = (["kernel", "relay", "userspace", "tcp"] as const)[i % 4]!;
      const statefile = `/run/tmp/cycle-${i}.state`;
      const fromBackend = kind !== "tcp" && (i >> 2) % 2 === 1;
      const label = kind === "tcp" ? `tcp-${(i >> 2) % 2 ? "relay" : "kernel"}` : `${kind}${fromBackend ? "-detach-busid" : ""}`;
      const what = `cycle ${i} (${label})`;
      let flow: Spawned;
      if (kind === "tcp") flow = cli(["connect", "--tcp", `127.0.0.1:${TCP_PORT}`, "--busid", "virtual-1", "--mode", (i >> 2) % 2 ? "relay" : "kernel", statefile]);
      else flow = kernelFlow(g.busid, statefile, { importArgs: ["--mode", kind === "relay" ? "relay" : "kernel"], exportArgs: ["--mode", kind] });
      const { local } = await waitImported(statefile, flow).catch((e: Error) => {
        throw new Error(`${what}: ${e.message}`);
      });
      counts[label] = (counts[label] ?? 0) + 1;
      const disk = await waitFor(`${what}: a disk on ${local}`, () => diskOf(local), 30_000);
      check(sha256(disk, MIB) === (kind === "tcp" ? vwantFirst : wantFirst), `${what}: ${disk} does not read back the first MiB`);
      const d = cli(fromBackend ? ["detach", "--busid", g.busid] : ["detach", "--statefile", statefile]);
      check((await ended(d, 60_000, `${what}: detach`)) === 0, `${what}: detach failed: ${d.stderr().trim()}`);
      const code = await ended(flow, 30_000, `${what}: the flow`);
      check(code === 0, `${what}: the flow exited ${code}: ${flow.stderr().trim()}`);
      await waitFor(`${what}: ports free`, () => vhciPorts().every((p) => p.status === 4), 20_000);
      check(!existsSync(statefile), `${what}: statefile left`);
      // given back: on usb-storage again (its disk scan may still run; the next export can take it)
      if (kind !== "tcp") await waitFor(`${what}: ${g.busid} back on usb-storage`, () => driverOf(g.busid) === "usb" && interfaceDriver(g.busid) === "usb-storage", 30_000);
      await waitFor(`${what}: no process left`, () => notServer().length === 0, 20_000).catch(() => check(false, `${what}: processes left: ${notServer().join(" | ")}`));
      if (kind === "tcp") {
        // measure the server's fds once it logged the end of this cycle's session
        tcpSessions++;
        await waitFor(`${what}: the server to end its session`, () => (server.stderr().match(/session ended/g) ?? []).length >= tcpSessions, 20_000);
        if (fdBaseline === undefined) fdBaseline = fdCount(serverPid);
      }
    }
    const fdEnd = fdCount(serverPid);
    check(fdEnd === fdBaseline, `the server's open fds went from ${fdBaseline} (after its first session) to ${fdEnd} after ${CYCLES} cycles`);
    check(vhciPorts().every((p) => p.status === 4), "used vhci ports after the cycles");
    const states = readdirSync("/run/tmp").filter((f) => f.startsWith("cycle-") && f.endsWith(".state"));
    check(states.length === 0, `statefiles left: ${states.join(", ")}`);
    const own = await waitFor("the gadget's disk on the backend", () => diskOf(g.busid), 30_000);
    check(sha256(own, 8 * MIB) === want, "the gadget disk no longer reads back byte-identical");
    check(sha256(vimg) === vwant, "the virtual disk's image changed");
    server.child.kill("SIGTERM");
    await ended(server, 20_000, "the server");
    await waitFor("no process left", () => ourProcesses().length === 0, 20_000).catch(() => check(false, `processes left: ${ourProcesses().join(" | ")}`));
    return `${CYCLES} cycles in ${Math.round((Date.now() - t0) / 1000)} s: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", ")}; server fds ${fdBaseline} -> ${fdEnd}`;
  } finally {
    server.child.kill("SIGKILL");
    g.remove();
    checkGadgetsGone();
  }
}

export const cycleScenario: Scenario = {
  name: `${CYCLES} attach/detach cycles in one boot alternating kernel, relay, userspace and TCP (kernel/relay) with detach from either side: 0 ports, 0 statefiles, 0 processes, server fds unchanged, disks byte-identical`,
  run: cycles,
};
