/**
 * Data-path benchmark, VM half (part of npm run bench; `npm run bench:vm`): boots the real-kernel
 * VM once (`VM_KERNEL` picks the kernel) and runs two optional guest scenarios in that boot:
 *   "bench: throughput" (test/vm/guest/bench-throughput.ts) — a 64 MiB gadget disk read with
 *     O_DIRECT 1 MiB reads: usb-storage keeps one URB in flight, so it is latency-bound;
 *   "bench: queued" (bench-queued.ts) — usbtest's queued bulk reads and writes, SGLEN URBs in
 *     flight: pipelining decides.
 * Each through the direct kernel path, the frontend relay, the backend relay, both, the
 * userspace backend, a Node copy hop, a C copy hop (bench/c/copy-hop.c, built here: the
 * cheapest userspace hop there is), the same hop in Node off the event loop (bench/koffi-hop.ts)
 * and a C userspace backend on usbfs (bench/c/usbfs-server.c: the floor of any userspace backend). Prints JSON with every ratio against a baseline measured in
 * the same boot, and the goals: on the disk the relays against the C hop (≥ 0.9: the same number
 * of userspace hops) and the userspace backend against the C hop + usbip-host (≥ 0.8); queued,
 * the relays against the direct path (≥ 0.9) and the userspace backend against usbip-host
 * (≥ 0.8), with the URBs in flight reached. BENCH_STRACE=1 adds the syscalls per URB of each
 * path's userspace processes. Exit 1 if a scenario failed or a result is missing or implausible.
 * Without qemu the VM is skipped loudly (exit 0, "skipped" in the JSON), like the VM suite.
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildC } from "./c-program.js";

const here = path.dirname(fileURLToPath(import.meta.url));
// the C copy hop (the ceiling for any relay process), built next to this script for the guest
const hop = buildC("copy-hop");
const hopNote = "path" in hop ? undefined : `copy-hop not built (${hop.why}): the cCopyHop mode is left out`;
if (hopNote) process.stderr.write(`bench/vm: ${hopNote}\n`);
// the C usbfs server (the floor for any userspace backend), the same way
const server = buildC("usbfs-server");
if (!("path" in server)) process.stderr.write(`bench/vm: usbfs-server not built (${server.why}): the cUsbfsServer modes are left out\n`);
// BENCH_VM_WORKLOADS=throughput or =queued runs one of the two
const workloads = (process.env.BENCH_VM_WORKLOADS ?? "throughput,queued").split(",");
const scenarios = workloads.map((w) => `bench: ${w}`);
const run = spawnSync(process.execPath, [path.join(here, "../test/vm/run.js"), ...scenarios], {
  encoding: "utf8",
  env: { ...process.env, CI: "" },
  maxBuffer: 64 << 20,
  timeout: 80 * 60_000,
});
const out = run.stdout ?? "";
const checks: string[] = [];
const skip = /# SKIP (.*)/.exec(out);
if (skip) {
  process.stderr.write(`bench/vm: VM NOT RUN: ${skip[1]}\n`);
  process.stdout.write(JSON.stringify({ bench: "vm-data-path", skipped: skip[1] }, null, 2) + "\n");
  process.exit(0);
}
// the TAP line is "ok N - vm[KERNEL] NAME …"
for (const s of scenarios) if (!new RegExp(`^ok \\d+ - vm\\S* ${s}`, "m").test(out)) checks.push(`the VM scenario "${s}" did not pass`);
const lines = out.split("\n").filter((l) => l.startsWith("# bench-json ")).map((l) => JSON.parse(l.slice("# bench-json ".length)) as Record<string, unknown>);
const r3 = (x: number) => Math.round(x * 1000) / 1000;
const ratio = (mbps: Record<string, number>, k: string, base: string) => (mbps[k] !== undefined && (mbps[base] ?? 0) > 0 ? r3(mbps[k]! / mbps[base]!) : null);
const kernel = /Linux ([^\s,]+)/.exec(out)?.[1];
const result: Record<string, unknown> = { kernel };

const disk = lines.find((l) => "sizeMiB" in l) as { mbps: Record<string, number>; gadgetLocalMBps: number; runs: Record<string, number[]>; rounds: number; readsPerAttach: number; maxInFlight: Record<string, number>; urbsPerRead: number; syscallsPerUrb?: Record<string, number> } | undefined;
if (workloads.includes("throughput")) {
  if (disk === undefined) checks.push("no bench-json line from the disk workload");
  else {
    const m = disk.mbps;
    if (!((m.direct ?? 0) > 1)) checks.push(`disk: implausible direct throughput ${m.direct} MB/s`);
    for (const [k, v] of Object.entries(disk.runs)) if (v.length !== disk.rounds * disk.readsPerAttach) checks.push(`disk ${k}: ${v.length} runs`);
    const vsHop = { frontendRelay: ratio(m, "frontendRelay", "cCopyHop"), backendRelay: ratio(m, "backendRelay", "cCopyHop"), userspace: ratio(m, "userspace", "cCopyHop") };
    result.disk = {
      workload: "64 MiB O_DIRECT read, 1 MiB reads (usb-storage: one URB in flight)",
      rounds: disk.rounds,
      mbps: { gadgetLocal: disk.gadgetLocalMBps, ...m },
      vsDirect: Object.fromEntries(Object.keys(m).filter((k) => k !== "direct").map((k) => [k, ratio(m, k, "direct")])),
      vsCCopyHop: Object.fromEntries(Object.keys(m).filter((k) => k !== "cCopyHop" && k !== "direct").map((k) => [k, ratio(m, k, "cCopyHop")])),
      // the userspace backend's usbfs loop against its earlier self (libusb transfers, libuv streams), same boot
      userspaceVsLibusbTransfers: ratio(m, "userspace", "userspaceLibusb"),
      // the userspace backend against the thinnest one in C on the same usbfs (bench/c/usbfs-server.c)
      userspaceVsCUsbfsServer: ratio(m, "userspace", "cUsbfsServer"),
      goals: { relaysVsCCopyHop: 0.9, userspaceVsCCopyHopAndUsbipHost: 0.8 },
      met: { relays: (vsHop.frontendRelay ?? 0) >= 0.9 && (vsHop.backendRelay ?? 0) >= 0.9, userspace: (vsHop.userspace ?? 0) >= 0.8 },
      maxInFlight: disk.maxInFlight,
      urbsPerRead: disk.urbsPerRead,
      ...(disk.syscallsPerUrb ? { syscallsPerUrb: disk.syscallsPerUrb } : {}),
      ...(hopNote ? { cCopyHopSkipped: hopNote } : {}),
      runs: disk.runs,
    };
  }
}
const queued = lines.find((l) => "sglen" in l) as { readMBps: Record<string, number>; writeMBps: Record<string, number>; warmReadMBps: Record<string, number>; warmWriteMBps: Record<string, number>; read: Record<string, number[]>; warmRead: Record<string, number[]>; rounds: number; sglen: number; length: number; iterations: number; maxInFlight: Record<string, number>; syscallsPerUrb?: Record<string, number> } | undefined;
if (workloads.includes("queued")) {
  if (queued === undefined) checks.push("no bench-json line from the queued workload");
  else {
    if (!((queued.readMBps.direct ?? 0) > 1)) checks.push(`queued: implausible direct throughput ${queued.readMBps.direct} MB/s`);
    for (const runs of [queued.read, queued.warmRead]) for (const [k, v] of Object.entries(runs)) if (v.length !== queued.rounds) checks.push(`queued ${k}: ${v.length} runs`);
    // the relays must have seen the pipelining the workload asks for, or it measured something else
    for (const k of ["frontendRelay", "backendRelay", "userspace"]) if (queued.maxInFlight[k] !== undefined && queued.maxInFlight[k]! < 2) checks.push(`queued ${k}: at most ${queued.maxInFlight[k]} URB in flight`);
    // every mode measured against direct (the userspace backend's is its ratio to usbip-host)
    const vs = (mb: Record<string, number>) => ({ frontendRelay: ratio(mb, "frontendRelay", "direct"), backendRelay: ratio(mb, "backendRelay", "direct"), ...Object.fromEntries(Object.keys(mb).filter((k) => !["direct", "userspace", "frontendRelay", "backendRelay"].includes(k)).map((k) => [k, ratio(mb, k, "direct")])), userspaceVsUsbipHost: ratio(mb, "userspace", "direct"), userspaceVsLibusbTransfers: ratio(mb, "userspace", "userspaceLibusb"), userspaceVsCUsbfsServer: ratio(mb, "userspace", "cUsbfsServer") });
    const read = vs(queued.readMBps);
    const write = vs(queued.writeMBps);
    const warmRead = vs(queued.warmReadMBps);
    const warmWrite = vs(queued.warmWriteMBps);
    const atLeast = (x: number | null, g: number) => (x ?? 0) >= g;
    result.queued = {
      workload: `usbtest 28 (read) / 27 (write): ${queued.iterations} x ${queued.sglen} URBs of ${queued.length} bytes, ${queued.sglen} in flight`,
      rounds: queued.rounds,
      readMBps: queued.readMBps,
      writeMBps: queued.writeMBps,
      readVsDirect: read,
      writeVsDirect: write,
      // the same case again on the same attach: the processes' code warm (see bench-queued.ts)
      warmReadMBps: queued.warmReadMBps,
      warmWriteMBps: queued.warmWriteMBps,
      warmReadVsDirect: warmRead,
      warmWriteVsDirect: warmWrite,
      goals: { relaysVsDirect: 0.9, userspaceVsUsbipHost: 0.8 },
      met: { relays: [read, write].every((x) => atLeast(x.frontendRelay, 0.9) && atLeast(x.backendRelay, 0.9)), userspace: [read, write].every((x) => atLeast(x.userspaceVsUsbipHost, 0.8)) },
      metWarm: { relays: [warmRead, warmWrite].every((x) => atLeast(x.frontendRelay, 0.9) && atLeast(x.backendRelay, 0.9)), userspace: [warmRead, warmWrite].every((x) => atLeast(x.userspaceVsUsbipHost, 0.8)) },
      maxInFlight: queued.maxInFlight,
      ...(queued.syscallsPerUrb ? { syscallsPerUrb: queued.syscallsPerUrb } : {}),
    };
  }
}
if (checks.length > 0) process.stderr.write(out.split("\n").filter((l) => l.startsWith("not ok") || l.startsWith("#")).slice(-40).join("\n") + "\n");
process.stdout.write(JSON.stringify({ bench: "vm-data-path", node: process.version, ...result, checks: checks.length === 0 ? "ok" : checks }, null, 2) + "\n");
process.exitCode = checks.length === 0 ? 0 : 1;
