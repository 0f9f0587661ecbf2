/**
 * The VM half of the relay benchmark (optional: runs only when selected by name, e.g. from
 * bench/vm.ts): a 64 MiB gadget disk read with O_DIRECT 1 MiB reads (coreutils dd) through
 * (a) the direct kernel path (usbip-host ↔ vhci-hcd on one socketpair: `qrexec-sim --link
 * direct`, which copies nothing, so only our relays are measured, not the simulator),
 * (b) the frontend relay, (c) the backend relay, (d) both relays — all in this one boot, rounds
 * alternating between the modes so drift in the emulator hits them alike. Every attach is
 * checked: the disk reads back the image's sha256 (untimed) and detach cleans up.
 * Result: one `# bench-json {...}` line appended to the TAP file (bench/vm.ts parses it).
 */
import { appendFileSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Scenario } from "./scenarios.js";
import { checkGadgetsGone, makeImage, massStorage } from "./gadget.js";
import { check, diskOf, processesMatching, sh, sha256, start, waitFor } from "./lib.js";
import { checkCleanedUp, cli, kernelFlow, waitImported } from "./flows.js";

const MIB = 1 << 20;
const SIZE_MIB = 64;
type Mode = { name: string; importMode: "kernel" | "relay"; exportMode: "kernel" | "relay" | "userspace"; link?: "socket" | "direct"; exportWrap?: string[] };
// bench/c/copy-hop.c, built by bench/vm.ts before the boot (absent: that mode is left out, said in the JSON)
const COPY_HOP = fileURLToPath(new URL("../../../bench/copy-hop", import.meta.url));
const ALL_MODES: Mode[] = [
  { name: "direct", importMode: "kernel", exportMode: "kernel" },
  { name: "frontendRelay", importMode: "relay", exportMode: "kernel" },
  { name: "backendRelay", importMode: "kernel", exportMode: "relay" },
  { name: "bothRelays", importMode: "relay", exportMode: "relay" },
  // issue 5: the device served from userspace through libusb instead of usbip-host
  { name: "userspace", importMode: "kernel", exportMode: "userspace" },
  // kernel modes over qrexec-sim's socket link: a plain Node copy loop, no decoding — the cost
  // of one userspace Node hop, to set the relays' cost against
  { name: "nodeCopyHop", importMode: "kernel", exportMode: "kernel", link: "socket" },
  // the cheapest userspace hop there is: a C program copying with one blocking thread per
  // direction (bench/c/copy-hop.c) between the direct link and the export's socket — the
  // ceiling for ANY relay process on this machine
  ...(existsSync(COPY_HOP) ? [{ name: "cCopyHop", importMode: "kernel", exportMode: "kernel", link: "direct", exportWrap: [COPY_HOP] } as Mode] : []),
];

// BENCH_MODES=direct,frontendRelay runs a subset (experiments); the bench runs them all
const MODES = process.env.BENCH_MODES ? ALL_MODES.filter((m) => process.env.BENCH_MODES!.split(",").includes(m.name)) : ALL_MODES;

/** One O_DIRECT read of the whole disk; MB/s. */
function directRead(disk: string): number {
  const t0 = process.hrtime.bigint();
  sh("dd", [`if=${disk}`, "of=/dev/null", "bs=1M", `count=${SIZE_MIB}`, "iflag=direct"], { timeoutMs: 300_000 });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return (SIZE_MIB * MIB) / 1e6 / s;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export const benchThroughput: Scenario = {
  name: "bench: throughput of a 64 MiB gadget disk, direct kernel path vs frontend relay vs backend relay vs both",
  optional: true,
  async run() {
    const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
    const readsPerAttach = 2;
    const img = "/run/tmp/bench.img";
    makeImage(img, SIZE_MIB);
    const want = sha256(img);
    const g = await massStorage("benchdisk", "dummy_udc.0", img);
    const runs: Record<string, number[]> = Object.fromEntries(MODES.map((m) => [m.name, []]));
    const local0 = await waitFor("the backend's own disk", () => diskOf(g.busid), 20_000);
    const localRuns: number[] = [];
    let maxInFlight = 0;
    try {
      for (let i = 0; i < readsPerAttach; i++) localRuns.push(directRead(local0));
      for (let r = 0; r < rounds; r++) {
        for (const m of r % 2 === 0 ? MODES : [...MODES].reverse()) {
          const statefile = `/run/tmp/state-bench-${m.name}`;
          const flow = kernelFlow(g.busid, statefile, { link: m.link ?? "direct", exportWrap: m.exportWrap, importArgs: ["--mode", m.importMode], exportArgs: ["--mode", m.exportMode, ...(m.exportMode === "userspace" ? ["--verbose"] : [])] });
          const { port, local } = await waitImported(statefile, flow);
          const disk = await waitFor(`a disk on the imported device ${local}`, () => diskOf(local), 30_000);
          check(sha256(disk, SIZE_MIB * MIB) === want, `${m.name}: imported disk does not read back the image`);
          for (let i = 0; i < readsPerAttach; i++) runs[m.name]!.push(directRead(disk));
          // BENCH_STRACE=1 (diagnostics): one more read, untimed, with the export process's syscalls counted
          if (process.env.BENCH_STRACE && r === 0) {
            const pid = processesMatching("usbip-qrexec.js export ").filter((p) => !p.includes("qrexec-sim"))[0]?.split(" ")[0];
            if (pid !== undefined) {
              const out = `${path.dirname(process.env.VM_RESULTS_TAP ?? "/run/results/x")}/strace-${m.name}.txt`;
              const st = start("strace", ["-f", "-c", "-w", "-p", pid, "-o", out]);
              await new Promise((res) => setTimeout(res, 1000));
              directRead(disk);
              st.child.kill("SIGINT");
              await st.exited;
            }
          }
          const d = cli(["detach", "--statefile", statefile]);
          check((await d.exited).code === 0, `${m.name}: detach failed: ${d.stderr().trim()}`);
          await checkCleanedUp({ port, statefile, busid: g.busid, interfaceDriver: "usb-storage", flow });
          // the userspace backend logs its session stats: the most URBs it had in flight at once
          for (const x of flow.stderr().matchAll(/"maxInFlight":(\d+)/g)) maxInFlight = Math.max(maxInFlight, Number(x[1]));
          await waitFor("the backend's disk to come back", () => diskOf(g.busid), 20_000);
        }
      }
    } finally {
      g.remove();
    }
    checkGadgetsGone();
    const mbps = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, Math.round(median(v) * 10) / 10]));
    const result = { sizeMiB: SIZE_MIB, readMiB: 1, rounds, readsPerAttach, gadgetLocalMBps: Math.round(median(localRuns) * 10) / 10, mbps, runs, userspaceMaxInFlight: maxInFlight };
    const tap = process.env.VM_RESULTS_TAP;
    if (tap) appendFileSync(tap, `# bench-json ${JSON.stringify(result)}\n`);
    else process.stdout.write(`# bench-json ${JSON.stringify(result)}\n`);
  },
};
