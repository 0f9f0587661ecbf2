/**
 * Issue 6's fault scenarios against the real kernel, for kernel, relay and userspace modes:
 * kill -9 of the frontend (import), of the backend (export) and of the qrexec simulator while a
 * 32 MiB gadget disk is being read in a loop. The other side must notice within 2 s (its
 * "connection ended" line), and then: the reader ends, every vhci port is free, the statefile
 * and the export pid file are gone, the gadget is back on usb-storage (after kill -9 of a
 * kernel/relay export the orphan guard gives it back; after kill -9 of a userspace export the
 * guard reprobes the interfaces libusb took), no process of ours is left (guards and qrexec
 * agents included), the disk still reads back byte-identical on the backend, no oops.
 */
import { existsSync } from "node:fs";
import type { Scenario } from "./scenarios.js";
import { checkGadgetsGone, makeImage, massStorage } from "./gadget.js";
import { check, diskOf, processesMatching, readLoop, tryRead, waitFor, type Spawned } from "./lib.js";
import { checkGivenBackAfterKill, kernelFlow, vhciPorts, waitImported } from "./flows.js";

type Mode = "kernel" | "relay" | "userspace";
type Victim = "frontend" | "backend" | "qrexec-sim";
const MODES: Record<Mode, { importMode: string; exportMode: string }> = {
  kernel: { importMode: "kernel", exportMode: "kernel" },
  relay: { importMode: "relay", exportMode: "relay" },
  userspace: { importMode: "kernel", exportMode: "userspace" },
};
const MIB = 1 << 20;
/** the lines each side writes (with USBIP_QREXEC_VERBOSE=1) when it sees the link end */
const NOTICED = {
  frontend: /usbip-qrexec import: (ending \(|relay ended \()/,
  backend: /usbip-qrexec export: (connection ended \(|session ended \()/,
};

/** Bytes read so far by a process (/proc/PID/io rchar). */
function bytesRead(pid: number): number {
  const m = /rchar:\s*(\d+)/.exec(tryRead(`/proc/${pid}/io`) ?? "");
  return m ? Number(m[1]) : 0;
}

function pidOf(what: "import" | "export"): number {
  const ps = processesMatching(`usbip-qrexec.js ${what} `).filter((p) => !p.includes("qrexec-sim"));
  check(ps.length === 1, `expected one ${what} process, found: ${ps.join(" | ") || "none"}`);
  return Number(ps[0]!.split(" ")[0]);
}

/** Poll the flow's stderr for `re`; ms from `t0` to the first time it shows, or undefined. */
async function noticed(flow: Spawned, re: RegExp, t0: number, timeoutMs: number): Promise<number | undefined> {
  while (Date.now() - t0 < timeoutMs) {
    if (re.test(flow.stderr())) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 20));
  }
  return undefined;
}

export async function killDuringRead(mode: Mode, victim: Victim): Promise<string> {
  const img = "/run/tmp/fault.img";
  makeImage(img, 32);
  const g = await massStorage("fault", "dummy_udc.0", img);
  const statefile = "/run/tmp/state-fault";
  let reader: Spawned | undefined;
  try {
    await waitFor("the backend's own disk", () => diskOf(g.busid), 20_000);
    const m = MODES[mode];
    const flow = kernelFlow(g.busid, statefile, { importArgs: ["--mode", m.importMode], exportArgs: ["--mode", m.exportMode], env: { USBIP_QREXEC_VERBOSE: "1" } });
    const { local } = await waitImported(statefile, flow);
    const disk = await waitFor(`a disk on the imported device ${local}`, () => diskOf(local), 30_000);
    // read the whole 32 MiB disk again and again until it goes away
    reader = readLoop(disk, 32);
    await waitFor("the reader to be under way", () => {
      const dd = processesMatching(`if=${disk}`).filter((p) => p.includes(" dd "));
      return dd.some((p) => bytesRead(Number(p.split(" ")[0])) >= 4 * MIB);
    }, 30_000, 20);
    const pid = victim === "frontend" ? pidOf("import") : victim === "backend" ? pidOf("export") : flow.child.pid!;
    const t0 = Date.now();
    process.kill(pid, "SIGKILL");
    const watch = victim === "frontend" ? [NOTICED.backend] : victim === "backend" ? [NOTICED.frontend] : [NOTICED.frontend, NOTICED.backend];
    const times: number[] = [];
    for (const re of watch) {
      const ms = await noticed(flow, re, t0, 30_000);
      check(ms !== undefined, `after kill -9 of the ${victim}, no "${re.source}" line within 30 s; stderr: ${flow.stderr().trim()}`);
      times.push(ms);
    }
    const slowest = Math.max(...times);
    check(slowest <= 2000, `after kill -9 of the ${victim} the other side noticed only after ${slowest} ms (limit 2000 ms)`);
    const r = await Promise.race([reader.exited, new Promise<undefined>((res) => setTimeout(() => res(undefined), 60_000))]);
    check(r !== undefined, "the disk reader did not end within 60 s of the kill");
    await waitFor("every vhci port free", () => vhciPorts().every((p) => p.status === 4), 30_000).catch(() => check(false, `vhci ports still used: ${JSON.stringify(vhciPorts().filter((p) => p.status !== 4))}`));
    await waitFor("the statefile removed", () => !existsSync(statefile), 30_000).catch(() => check(false, `statefile ${statefile} left behind; stderr: ${flow.stderr().trim()}`));
    await checkGivenBackAfterKill(g.busid, img, 32, () => `stderr: ${flow.stderr().trim()}`);
    return `other side noticed in ${times.join("/")} ms`;
  } finally {
    reader?.child.kill("SIGKILL");
    g.remove();
    checkGadgetsGone();
  }
}

export const faultScenarios: Scenario[] = (["kernel", "relay", "userspace"] as const).flatMap((mode) =>
  (["frontend", "backend", "qrexec-sim"] as const).map((victim) => ({
    name: `${mode} mode: kill -9 of the ${victim} during a 32 MiB disk read: the other side notices within 2 s, port free, statefile gone, device back on usb-storage, no process left`,
    run: () => killDuringRead(mode, victim),
  })),
);
