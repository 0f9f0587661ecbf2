/**
 * The VM half of the attach-time bench (optional: runs only when selected by name, from
 * bench/attach.ts): how long from starting an export to the disk being visible on the
 * frontend (its block device under the vhci-hcd device), for a gadget disk, through
 * (a) bare-attach.py: the sysfs writes alone (bind to usbip-host, usbip_sockfd, vhci attach),
 *     a short python3 script with no checks — the floor any tool has;
 * (b) qrexec-sim --link direct with import and export in kernel mode;
 * (c) the same with the import in relay mode;
 * (e) (b) with the CLI a user runs: the .deb's (build/, made by bench/attach.ts), unpacked — one
 *     esbuild bundle instead of dist/'s many modules;
 * (d) qrexec-sim --link direct running `true` on both sides: the simulator's own start (two
 *     agents and itself), which a real qrexec link replaces with its own.
 * Rounds alternate the order. Every attach reads the disk's first MiB back and cleans up. Also
 * measured: a bare Node start and our CLI's (`--version`), and one more kernel-mode attach with
 * --verbose whose log lines are stamped with their time since the start (the timeline).
 * Result: one `# bench-json {...}` line appended to the TAP file.
 */
import { appendFileSync, readdirSync, rmSync } from "node:fs";
import path from "node:path";
import type { Scenario } from "./scenarios.js";
import { checkGadgetsGone, driverOf, interfaceDriver, makeImage, massStorage } from "./gadget.js";
import { check, diskOf, modprobe, sh, sha256, start, waitFor } from "./lib.js";
import { checkCleanedUp, cli, CLI, kernelFlow, repo, vhciPorts, waitImported } from "./flows.js";

const BARE = path.join(repo, "test/vm/guest/bare-attach.py");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

/** The disk on whichever vhci port holds a device now. */
function importedDisk(): string | undefined {
  for (const p of vhciPorts()) if (p.status === 6 && p.local !== "0-0") return diskOf(p.local);
  return undefined;
}

export const benchAttach: Scenario = {
  name: "bench: attach time, export start to the disk visible on the frontend, ours (kernel, relay) vs the bare sysfs writes",
  optional: true,
  async run() {
    modprobe("usbip-host", "vhci-hcd");
    const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
    const img = "/run/tmp/bench-attach.img";
    makeImage(img, 4);
    const want = sha256(img, 1 << 20);
    const g = await massStorage("attachdisk", "dummy_udc.0", img);
    const runs: Record<string, number[]> = { bare: [], kernel: [], relay: [], relayEventLoop: [], backendRelay: [], simOnly: [], kernelPackaged: [] };
    const deb = readdirSync(path.join(repo, "build")).find((f) => /^usbip-qrexec_.*\.deb$/.test(f));
    check(deb !== undefined, "no .deb in build/ (bench/attach.ts makes it)");
    rmSync("/run/tmp/attach-pkg", { recursive: true, force: true });
    sh("dpkg-deb", ["-x", path.join(repo, "build", deb), "/run/tmp/attach-pkg"]);
    const PACKAGED = "/run/tmp/attach-pkg/usr/bin/usbip-qrexec";
    let timeline: string[] = [];
    await waitFor("the backend's own disk", () => diskOf(g.busid), 20_000);
    try {
      for (let r = 0; r <= rounds; r++) {
        // the extra last round only takes the kernel-mode timeline
        // relayEventLoop: the relay kept on the event loop (USBIP_QREXEC_RELAY_THREAD=0), for the cost of its thread's start
        // backendRelay: the export in relay mode (its thread made before the device is bound), the import in kernel mode
        const order = r === rounds ? ["kernel"] : ["bare", "kernel", "relay", "relayEventLoop", "backendRelay", "simOnly", "kernelPackaged"];
        for (const m of r % 2 === 0 ? order : order.reverse()) {
          if (m === "simOnly") {
            const t0 = process.hrtime.bigint();
            const f = cli(["qrexec-sim", "--link", "direct", "--", "true", "--", "true"]);
            check((await f.exited).code === 0, `qrexec-sim with true: ${f.stderr().trim()}`);
            runs.simOnly!.push(ms(t0));
            continue;
          }
          if (m === "bare") {
            const port = vhciPorts().find((p) => p.hub === "hs" && p.status === 4)!.port;
            const t0 = process.hrtime.bigint();
            const b = start("python3", [BARE, g.busid, String(port)]);
            const disk = await waitFor("the bare attach's disk", () => importedDisk(), 30_000, 10);
            runs.bare!.push(ms(t0));
            check(sha256(disk, 1 << 20) === want, "bare: the imported disk does not read back the image");
            b.child.kill("SIGTERM");
            check((await b.exited).code === 0, `bare-attach.py: ${b.stderr().trim()}`);
            await waitFor("bare: port free", () => vhciPorts().every((p) => p.status === 4), 20_000);
            await waitFor("bare: the device back on usb-storage", () => driverOf(g.busid) === "usb" && interfaceDriver(g.busid) === "usb-storage", 20_000);
            await waitFor("the backend's disk back", () => diskOf(g.busid), 20_000);
            continue;
          }
          const statefile = `/run/tmp/state-attach-${m}`;
          const t0 = process.hrtime.bigint();
          // the last kernel-mode round logs each step with its time since the start (not timed itself: it is one more)
          const verbose = r === rounds;
          const env = { ...(verbose ? { USBIP_QREXEC_VERBOSE: "1" } : {}), ...(m === "relayEventLoop" ? { USBIP_QREXEC_RELAY_THREAD: "0" } : {}) };
          const flow = kernelFlow(g.busid, statefile, { link: "direct", importArgs: ["--mode", m.startsWith("relay") ? "relay" : "kernel"], ...(m === "backendRelay" ? { exportArgs: ["--mode", "relay"] } : {}), env, ...(m === "kernelPackaged" ? { cli: PACKAGED } : {}) });
          if (verbose) flow.child.stderr!.on("data", (b: Buffer) => timeline.push(...b.toString().trim().split("\n").map((l) => `${Math.round(ms(t0))} ${l.slice(0, 100)}`)));
          const disk = await waitFor(`${m}: the imported disk`, () => importedDisk(), 30_000, 10);
          if (verbose) timeline.push(`${Math.round(ms(t0))} (disk visible)`);
          else runs[m]!.push(ms(t0));
          const { port } = await waitImported(statefile, flow);
          check(sha256(disk, 1 << 20) === want, `${m}: the imported disk does not read back the image`);
          const d = cli(["detach", "--statefile", statefile], {}, m === "kernelPackaged" ? PACKAGED : CLI);
          check((await d.exited).code === 0, `${m}: detach failed: ${d.stderr().trim()}`);
          await checkCleanedUp({ port, statefile, busid: g.busid, interfaceDriver: "usb-storage", flow });
          await waitFor("the backend's disk back", () => diskOf(g.busid), 20_000);
        }
      }
    } finally {
      g.remove();
    }
    checkGadgetsGone();
    // what a process start costs here: bare Node, and our CLI loading its entry point
    const startup: Record<string, number[]> = { nodeBare: [], cliVersion: [], cliVersionPackaged: [] };
    for (let i = 0; i < rounds; i++) {
      for (const [k, args] of [["nodeBare", ["-e", "0"]], ["cliVersion", [CLI, "--version"]], ["cliVersionPackaged", [PACKAGED, "--version"]]] as const) {
        const t0 = process.hrtime.bigint();
        const p = start(process.execPath, [...args]);
        check((await p.exited).code === 0, `${k}: ${p.stderr().trim()}`);
        startup[k]!.push(ms(t0));
      }
    }
    for (const [k, v] of Object.entries(startup)) runs[k] = v;
    const msMedian = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, Math.round(median(v))]));
    const result = { rounds, msMedian, timeline, runs: Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, v.map(Math.round)])) };
    const line = `# bench-json ${JSON.stringify(result)}\n`;
    const tap = process.env.VM_RESULTS_TAP;
    if (tap) appendFileSync(tap, line);
    else process.stdout.write(line);
    return `median ms: ${JSON.stringify(msMedian)}`;
  },
};
