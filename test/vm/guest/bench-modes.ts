/**
 * The data paths the VM benchmarks compare in one boot (bench-throughput.ts: a disk, one URB in
 * flight; bench-queued.ts: usbtest's queued bulk reads and writes, many URBs in flight), and the
 * loop that attaches a device through each in turn: rounds alternating the order so that drift
 * in the emulator hits all alike, every attach checked by the caller and cleaned up here
 * (detach, the port free, the device back on its driver, no process left).
 *
 * `BENCH_STRACE=1`: once per mode, one more untimed workload run with every userspace process of
 * the data path under `strace -f -c` (ours, qrexec-sim's copy loop, the C hop): the syscalls it
 * took, for the calls-per-URB figures. `BENCH_CPU_PROF=1` (diagnostics): the export process of
 * each flow writes a V8 CPU profile into the results share (cpu-prof-MODE/), for Chrome's
 * DevTools or a script (Node refuses --cpu-prof in NODE_OPTIONS, so the export is started
 * through a wrapper that adds it); the timings of such a run are not comparable.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { check, processesMatching, sleep, start, waitFor, type Spawned } from "./lib.js";
import { checkCleanedUp, cli, kernelFlow, waitImported } from "./flows.js";

export type Mode = { name: string; importMode: "kernel" | "relay"; exportMode: "kernel" | "relay" | "userspace"; link?: "socket" | "direct"; exportWrap?: string[]; env?: NodeJS.ProcessEnv };
// bench/c/copy-hop.c, built by bench/vm.ts before the boot (absent: that mode is left out, said in the JSON)
const COPY_HOP = fileURLToPath(new URL("../../../bench/copy-hop", import.meta.url));
// bench/c/usbfs-server.c, the same way: the thinnest userspace backend on usbfs there is
const USBFS_SERVER = fileURLToPath(new URL("../../../bench/usbfs-server", import.meta.url));
const KOFFI_USBFS_SERVER = fileURLToPath(new URL("../../../bench/koffi-usbfs-server.js", import.meta.url));
const KOFFI_HOP = fileURLToPath(new URL("../../../bench/koffi-hop.js", import.meta.url));
const ALL_MODES: Mode[] = [
  { name: "direct", importMode: "kernel", exportMode: "kernel" },
  { name: "frontendRelay", importMode: "relay", exportMode: "kernel" },
  { name: "backendRelay", importMode: "kernel", exportMode: "relay" },
  { name: "bothRelays", importMode: "relay", exportMode: "relay" },
  // the device served from userspace instead of usbip-host: its URBs on our usbfs fd, reaped in
  // the poll() loop that moves the link's bytes (backend/serve-link.ts)
  { name: "userspace", importMode: "kernel", exportMode: "userspace" },
  // the same with its URBs as node-usb's (libusb's) transfers and the link on libuv's streams:
  // the userspace backend as it was before, measured beside it
  { name: "userspaceLibusb", importMode: "kernel", exportMode: "userspace", env: { USBIP_QREXEC_TRANSFERS: "libusb" } },
  // the floor of any userspace backend on usbfs: a C program serving the URBs with one thread's
  // poll() on the link and the usbfs fd (bench/c/usbfs-server.c), in place of the export — with
  // its URB buffers malloc()ed (usbfs allocates and copies each URB's data) and mmap()ed from
  // the usbfs fd (usbfs's zero-copy buffers)
  ...(existsSync(USBFS_SERVER)
    ? [
        { name: "cUsbfsServer", importMode: "kernel", exportMode: "userspace", exportWrap: [USBFS_SERVER] } as Mode,
        { name: "cUsbfsServerMmap", importMode: "kernel", exportMode: "userspace", exportWrap: [USBFS_SERVER], env: { USBFS_SERVER_MMAP: "1" } } as Mode,
      ]
    : []),
  // the same in Node (bench/koffi-usbfs-server.ts: koffi's poll, ioctl, read and writev, no
  // validation): the floor of a userspace backend written in Node
  { name: "koffiUsbfsServer", importMode: "kernel", exportMode: "userspace", exportWrap: [process.execPath, KOFFI_USBFS_SERVER] },
  // kernel modes over qrexec-sim's socket link: a plain Node copy loop, no decoding — the cost
  // of one userspace Node hop, to set the relays' cost against
  { name: "nodeCopyHop", importMode: "kernel", exportMode: "kernel", link: "socket" },
  // the cheapest userspace hop there is: a C program copying with one blocking thread per
  // direction (bench/c/copy-hop.c) between the direct link and the export's socket — the
  // ceiling for ANY relay process on this machine
  ...(existsSync(COPY_HOP) ? [{ name: "cCopyHop", importMode: "kernel", exportMode: "kernel", link: "direct", exportWrap: [COPY_HOP] } as Mode] : []),
  // the same hop in Node off the event loop (bench/koffi-hop.ts: a worker thread per direction
  // blocking only in poll(), reads and writes through koffi): the floor of a relay built that way
  { name: "koffiCopyHop", importMode: "kernel", exportMode: "kernel", link: "direct", exportWrap: [process.execPath, KOFFI_HOP] },
  // the same with both directions in one thread's poll() loop (what the relay thread does)
  { name: "koffiLoopHop", importMode: "kernel", exportMode: "kernel", link: "direct", exportWrap: [process.execPath, KOFFI_HOP, "--one-thread"] },
];
/** Not run by default (BENCH_MODES names them): the relays on the event loop, as before the relay thread. */
const EXTRA_MODES: Mode[] = [
  { name: "frontendRelayEventLoop", importMode: "relay", exportMode: "kernel", env: { USBIP_QREXEC_RELAY_THREAD: "0" } },
  { name: "backendRelayEventLoop", importMode: "kernel", exportMode: "relay", env: { USBIP_QREXEC_RELAY_THREAD: "0" } },
  // usbfs URBs, but the link on libuv's streams and the completions polled on koffi's worker thread
  { name: "userspaceStreams", importMode: "kernel", exportMode: "userspace", env: { USBIP_QREXEC_FD_LOOP: "0" } },
];

/**
 * `BENCH_AB_TREE=DIR` (experiments): another build of ours (DIR/bin/usbip-qrexec.js, e.g. a
 * worktree of an earlier commit with its dist/ built; the guest sees the host's / read-only)
 * as the export of two more modes, userspaceAB and backendRelayAB: a change to the backend
 * measured against the build before it in one boot.
 */
const AB_TREE = process.env.BENCH_AB_TREE;
const AB_MODES: Mode[] = AB_TREE
  ? (["userspace", "relay"] as const).map((exportMode) => ({
      name: exportMode === "userspace" ? "userspaceAB" : "backendRelayAB",
      importMode: "kernel",
      exportMode,
      // the wrap gets `node CLI export …`: the other build's CLI takes CLI's place
      exportWrap: ["sh", "-c", `n=$1; shift 2; exec "$n" ${path.join(AB_TREE, "bin/usbip-qrexec.js")} "$@"`, "sh"],
    }))
  : [];

/** BENCH_MODES=direct,frontendRelay runs a subset (experiments); the benches run them all. */
export const MODES = process.env.BENCH_MODES ? [...ALL_MODES, ...EXTRA_MODES, ...AB_MODES].filter((m) => process.env.BENCH_MODES!.split(",").includes(m.name)) : [...ALL_MODES, ...AB_MODES];

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export interface ModeLoop {
  busid: string;
  /** the driver the device's interface is back on after each detach */
  interfaceDriver: string;
  rounds: number;
  /** the imported device `local` through mode `m`: check it, then measure */
  attached(m: Mode, local: string): Promise<void>;
  /** BENCH_STRACE: one more untimed run of the workload on `local` */
  straceRun?: (local: string) => Promise<void>;
}

export interface ModeLoopResult {
  /** per mode: the most URBs in flight any relay or the userspace backend saw ("maxInFlight" in their stats) */
  maxInFlight: Record<string, number>;
  /** per mode, BENCH_STRACE only: syscalls of the data path's userspace processes in one untimed run */
  syscalls: Record<string, { total: number; calls: Record<string, number> }>;
}

/** Every mode in turn, `rounds` times. */
export async function forEachMode(o: ModeLoop): Promise<ModeLoopResult> {
  const maxInFlight: Record<string, number> = {};
  const syscalls: ModeLoopResult["syscalls"] = {};
  for (let r = 0; r < o.rounds; r++) {
    for (const m of r % 2 === 0 ? MODES : [...MODES].reverse()) {
      const statefile = `/run/tmp/state-bench-${m.name}`;
      // --verbose: the relays and the userspace backend log their statistics when they end
      const verbose = (mode: string) => (mode === "kernel" ? [] : ["--verbose"]);
      const profDir = path.join(path.dirname(process.env.VM_RESULTS_TAP ?? "/run/results/x"), `cpu-prof-${m.name}`);
      const wrap = process.env.BENCH_CPU_PROF && !m.exportWrap ? ["sh", "-c", `n=$1; shift; exec "$n" --cpu-prof --cpu-prof-dir=${profDir} "$@"`, "sh"] : m.exportWrap;
      const flow = kernelFlow(o.busid, statefile, { link: m.link ?? "direct", exportWrap: wrap, env: m.env, importArgs: ["--mode", m.importMode, ...verbose(m.importMode)], exportArgs: ["--mode", m.exportMode, ...verbose(m.exportMode)] });
      const { port, local } = await waitImported(statefile, flow);
      await o.attached(m, local);
      if (process.env.BENCH_STRACE && r === 0 && o.straceRun) syscalls[m.name] = await straced(() => o.straceRun!(local));
      const d = cli(["detach", "--statefile", statefile]);
      check((await d.exited).code === 0, `${m.name}: detach failed: ${d.stderr().trim()}`);
      await checkCleanedUp({ port, statefile, busid: o.busid, interfaceDriver: o.interfaceDriver, flow });
      for (const x of flow.stderr().matchAll(/"maxInFlight":(\d+)/g)) maxInFlight[m.name] = Math.max(maxInFlight[m.name] ?? 0, Number(x[1]));
    }
  }
  return { maxInFlight, syscalls };
}

/** The data path's userspace processes: ours (not the CLI waiting in detach) and the C programs. */
function dataPathPids(): string[] {
  return [...processesMatching("usbip-qrexec"), ...processesMatching("bench/copy-hop"), ...processesMatching("bench/usbfs-server"), ...processesMatching("bench/koffi-usbfs-server")].map((p) => p.split(" ")[0]!).filter((p, i, all) => all.indexOf(p) === i);
}

/** `run` with strace -f -c attached to the data path; the calls per syscall and their total. */
async function straced(run: () => Promise<void>): Promise<{ total: number; calls: Record<string, number> }> {
  const out = `/run/tmp/strace-${process.hrtime.bigint()}.txt`;
  const st: Spawned = start("strace", ["-f", "-c", "-o", out, ...dataPathPids().flatMap((p) => ["-p", p])]);
  // strace says "Process N attached" for each before it counts anything
  await waitFor("strace attached", () => (st.stderr().match(/attached/g)?.length ?? 0) > 0 || st.child.exitCode !== null, 10_000).catch(() => {});
  await sleep(500);
  await run();
  st.child.kill("SIGINT");
  await st.exited;
  const calls: Record<string, number> = {};
  let total = 0;
  // "% time     seconds  usecs/call     calls    errors syscall": calls is the 4th column
  for (const line of (existsSync(out) ? readFileSync(out, "utf8") : "").split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || !/^\d+\.\d+$/.test(f[0]!) || !/^\d+$/.test(f[3]!)) continue;
    const name = f[f.length - 1]!;
    if (name === "total") total = Number(f[3]);
    else calls[name] = Number(f[3]);
  }
  return { total, calls };
}
