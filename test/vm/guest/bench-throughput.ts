/**
 * The VM half of the relay benchmark (optional: runs only when selected by name, e.g. from
 * bench/vm.ts): a 64 MiB gadget disk read with O_DIRECT 1 MiB reads (coreutils dd) through
 * (a) the direct kernel path (usbip-host ↔ vhci-hcd on one socketpair: `qrexec-sim --link
 * direct`, which copies nothing, so only our relays are measured, not the simulator),
 * (b) the frontend relay, (c) the backend relay, (d) both relays — all in this one boot, rounds
 * alternating between the modes so drift in the emulator hits them alike (bench-modes.ts), and the
 * C and Node copy hops and the userspace backend. Every attach is checked: the disk reads back
 * the image's sha256 (untimed) and detach cleans up. BENCH_STRACE=1 adds the data path's
 * syscalls per URB (one untimed read per mode under strace).
 * Result: one `# bench-json {...}` line appended to the TAP file (bench/vm.ts parses it).
 */
import { appendFileSync } from "node:fs";
import type { Scenario } from "./scenarios.js";
import { checkGadgetsGone, makeImage, massStorage } from "./gadget.js";
import { check, diskOf, sh, sha256, waitFor } from "./lib.js";
import { forEachMode, median, MODES } from "./bench-modes.js";

const MIB = 1 << 20;
const SIZE_MIB = 64;

/** One O_DIRECT read of the whole disk; MB/s. */
function directRead(disk: string): number {
  const t0 = process.hrtime.bigint();
  sh("dd", [`if=${disk}`, "of=/dev/null", "bs=1M", `count=${SIZE_MIB}`, "iflag=direct"], { timeoutMs: 300_000 });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return (SIZE_MIB * MIB) / 1e6 / s;
}

/**
 * The URBs one 64 MiB O_DIRECT read makes: usb-storage's bulk-only transport sends each SCSI
 * READ as three URBs (the 31-byte CBW out, the data in, the 13-byte CSW in), and the block layer
 * splits each 1 MiB read into commands of at most max_sectors_kb.
 */
function urbsPerRead(disk: string): number {
  const maxKb = Number(sh("cat", [`/sys/block/${disk.replace("/dev/", "")}/queue/max_sectors_kb`]).trim());
  return SIZE_MIB * Math.ceil(1024 / maxKb) * 3;
}

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
    let urbs = 0;
    let loop;
    try {
      for (let i = 0; i < readsPerAttach; i++) localRuns.push(directRead(local0));
      loop = await forEachMode({
        busid: g.busid,
        interfaceDriver: "usb-storage",
        rounds,
        async attached(m, local) {
          const disk = await waitFor(`a disk on the imported device ${local}`, () => diskOf(local), 30_000);
          check(sha256(disk, SIZE_MIB * MIB) === want, `${m.name}: imported disk does not read back the image`);
          for (let i = 0; i < readsPerAttach; i++) runs[m.name]!.push(directRead(disk));
          urbs = urbsPerRead(disk);
        },
        straceRun: async (local) => void directRead(diskOf(local)!),
      });
    } finally {
      g.remove();
    }
    checkGadgetsGone();
    const mbps = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, Math.round(median(v) * 10) / 10]));
    const perUrb = Object.fromEntries(Object.entries(loop.syscalls).map(([k, v]) => [k, Math.round((v.total / urbs) * 100) / 100]));
    const result = { sizeMiB: SIZE_MIB, readMiB: 1, rounds, readsPerAttach, gadgetLocalMBps: Math.round(median(localRuns) * 10) / 10, mbps, runs, maxInFlight: loop.maxInFlight, urbsPerRead: urbs, ...(process.env.BENCH_STRACE ? { syscallsPerUrb: perUrb, syscalls: loop.syscalls } : {}) };
    const tap = process.env.VM_RESULTS_TAP;
    if (tap) appendFileSync(tap, `# bench-json ${JSON.stringify(result)}\n`);
    else process.stdout.write(`# bench-json ${JSON.stringify(result)}\n`);
  },
};
