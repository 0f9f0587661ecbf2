/**
 * Issue 6's lifecycle faults against the real kernel (the kill -9 cases are in
 * scenario-faults.ts): the device unplugged mid-transfer (its UDC unbound) and plugged back,
 * detach while I/O is in flight, an export of a device already exported elsewhere, two attaches
 * racing for ports, a full vhci-hcd hub, and several devices at once through the relays.
 */
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Scenario } from "./scenarios.js";
import { checkGadgetsGone, driverOf, interfaceDriver, makeImage, massStorage, sourceSink, type Gadget } from "./gadget.js";
import { check, diskOf, ended, readLoop, sha256, sleep, start, waitFor, type Spawned } from "./lib.js";
import { cli, kernelFlow, ourProcesses, repo, vhciPorts, waitImported } from "./flows.js";
import { runUsbtest } from "./scenario-kernel-usbtest.js";

type Mode = "kernel" | "relay" | "userspace";
const MODES: Record<Mode, { importArgs: string[]; exportArgs: string[] }> = {
  kernel: { importArgs: ["--mode", "kernel"], exportArgs: ["--mode", "kernel"] },
  relay: { importArgs: ["--mode", "relay"], exportArgs: ["--mode", "relay"] },
  userspace: { importArgs: ["--mode", "kernel"], exportArgs: ["--mode", "userspace"] },
};
const MIB = 1 << 20;
const VERBOSE = { USBIP_QREXEC_VERBOSE: "1" };

/** Nothing of ours left: ports free, no statefile, no process. */
async function checkAllClear(statefiles: string[]): Promise<void> {
  await waitFor("every vhci port free", () => vhciPorts().every((p) => p.status === 4), 30_000).catch(() => check(false, `vhci ports still used: ${JSON.stringify(vhciPorts().filter((p) => p.status !== 4))}`));
  for (const s of statefiles) check(!existsSync(s), `statefile ${s} left behind`);
  await waitFor("no process of ours left", () => ourProcesses().length === 0, 30_000).catch(() => check(false, `processes left: ${ourProcesses().join(" | ")}`));
}

async function backOnStorage(g: Gadget, img: string, mib: number): Promise<void> {
  await waitFor(`${g.busid} back on usb-storage`, () => driverOf(g.busid) === "usb" && interfaceDriver(g.busid) === "usb-storage", 30_000).catch(() =>
    check(false, `${g.busid} not back on usb-storage (driver ${driverOf(g.busid)}, interface ${interfaceDriver(g.busid)})`),
  );
  const disk = await waitFor(`the backend's disk on ${g.busid}`, () => diskOf(g.busid), 30_000);
  check(sha256(disk, mib * MIB) === sha256(img), `the backend's disk ${disk} does not read back the image`);
}

/** Import `g` in `mode` and check the disk reads back; returns the flow and the imported disk. */
async function importDisk(g: Gadget, img: string, mib: number, mode: Mode, statefile: string): Promise<{ flow: Spawned; disk: string; port: number }> {
  const flow = kernelFlow(g.busid, statefile, { ...MODES[mode], env: VERBOSE });
  const { port, local } = await waitImported(statefile, flow);
  const disk = await waitFor(`a disk on the imported device ${local}`, () => diskOf(local), 30_000);
  check(sha256(disk, mib * MIB) === sha256(img), `imported disk ${disk} does not read back the image`);
  return { flow, disk, port };
}

/** The gadget's UDC unbound mid-read (the device vanishes), then bound again and re-imported. */
async function unplugMidTransfer(mode: Mode): Promise<void> {
  const img = "/run/tmp/unplug-mid.img";
  makeImage(img, 16);
  const g = await massStorage("unplugmid", "dummy_udc.0", img);
  const udcFile = path.join("/sys/kernel/config/usb_gadget", g.name, "UDC");
  const statefile = "/run/tmp/state-unplug-mid";
  let reader: Spawned | undefined;
  try {
    const { flow, disk } = await importDisk(g, img, 16, mode, statefile);
    reader = readLoop(disk, 16);
    await sleep(1500);
    writeFileSync(udcFile, "\n"); // unplug (an empty write(2) would never reach the kernel)
    await ended(reader, 60_000, "the disk reader");
    const code = await ended(flow, 60_000, "the flow after the unplug");
    const err = flow.stderr();
    // the backend says what happened, in one line; the frontend saw its link end
    check(/usbip-qrexec export: (warning: )?.*is gone \(unplugged\)/.test(err), `no "gone (unplugged)" line from the export: ${err.trim()}`);
    check(/usbip-qrexec import: (ending \(|relay ended \()/.test(err), `the import did not log the end of its link: ${err.trim()}`);
    check(!/internal error|at .*\.js:\d+/.test(err), `a stack trace or internal error: ${err.trim()}`);
    check(code !== null, "the flow was killed by a signal");
    await checkAllClear([statefile]);
    writeFileSync(udcFile, "dummy_udc.0"); // plug it back
    await waitFor(`${g.busid} to enumerate again`, () => interfaceDriver(g.busid) === "usb-storage" && diskOf(g.busid), 30_000);
    const again = await importDisk(g, img, 16, mode, statefile);
    const d = cli(["detach", "--statefile", statefile]);
    check((await d.exited).code === 0, `detach: ${d.stderr()}`);
    await ended(again.flow, 30_000, "the re-imported flow after detach");
    await checkAllClear([statefile]);
    await backOnStorage(g, img, 16);
  } finally {
    reader?.child.kill("SIGKILL");
    g.remove();
  }
  checkGadgetsGone();
}

/** detach (frontend --statefile, or backend --busid) while a read loop is running. */
async function detachMidTransfer(mode: Mode, from: "frontend" | "backend"): Promise<void> {
  const img = "/run/tmp/detach-mid.img";
  makeImage(img, 16);
  const g = await massStorage("detachmid", "dummy_udc.0", img);
  const statefile = "/run/tmp/state-detach-mid";
  let reader: Spawned | undefined;
  try {
    const { flow, disk } = await importDisk(g, img, 16, mode, statefile);
    reader = readLoop(disk, 16);
    await sleep(1500);
    const d = cli(from === "frontend" ? ["detach", "--statefile", statefile] : ["detach", "--busid", g.busid]);
    const dcode = await ended(d, 60_000, "detach");
    check(dcode === 0, `detach exited ${dcode}: ${d.stderr().trim()}`);
    await ended(reader, 60_000, "the disk reader");
    const fcode = await ended(flow, 60_000, "the flow after detach");
    check(fcode === 0, `the flow exited ${fcode}: ${flow.stderr().trim()}`);
    await checkAllClear([statefile]);
    await backOnStorage(g, img, 16);
  } finally {
    reader?.child.kill("SIGKILL");
    g.remove();
  }
  checkGadgetsGone();
}

/** A second export of a device already exported is refused, and the first keeps working. */
async function alreadyExported(): Promise<void> {
  const img = "/run/tmp/twice.img";
  makeImage(img, 8);
  const g = await massStorage("twice", "dummy_udc.0", img);
  const statefile = "/run/tmp/state-twice";
  try {
    const { flow, disk } = await importDisk(g, img, 8, "kernel", statefile);
    for (const mode of ["kernel", "relay", "userspace"] as const) {
      const second = kernelFlow(g.busid, "/run/tmp/state-twice-2", { importArgs: ["--mode", "kernel"], exportArgs: ["--mode", mode] });
      const code = await ended(second, 60_000, `the second export (${mode} mode)`);
      check(code !== 0, `a second export in ${mode} mode of an exported device succeeded`);
      check(new RegExp(`usbip-qrexec: ${g.busid.replace(/\./g, "\\.")} is already exported \\(by process \\d+\\): end that first`).test(second.stderr()), `no clear refusal in ${mode} mode: ${second.stderr().trim()}`);
      check(!existsSync("/run/tmp/state-twice-2"), "the refused attach left a statefile");
      // the first export is untouched: still on usbip-host, the imported disk still reads back
      check(driverOf(g.busid) === "usbip-host", `after the refused ${mode} export ${g.busid} is on ${driverOf(g.busid)}`);
      check(sha256(disk, 8 * MIB) === sha256(img), `after the refused ${mode} export the imported disk does not read back`);
    }
    const d = cli(["detach", "--statefile", statefile]);
    check((await d.exited).code === 0, `detach: ${d.stderr()}`);
    await ended(flow, 30_000, "the flow after detach");
    await checkAllClear([statefile]);
    await backOnStorage(g, img, 8);
  } finally {
    g.remove();
  }
  checkGadgetsGone();
}

/** Two imports started at the same instant get two different ports and both work. */
async function racingAttaches(): Promise<void> {
  const imgs = ["/run/tmp/race-a.img", "/run/tmp/race-b.img"];
  for (const i of imgs) makeImage(i, 8);
  const gs = [await massStorage("racea", "dummy_udc.0", imgs[0]!), await massStorage("raceb", "dummy_udc.1", imgs[1]!)];
  const statefiles = ["/run/tmp/state-race-a", "/run/tmp/state-race-b"];
  try {
    for (const g of gs) await waitFor(`the backend's disk on ${g.busid}`, () => diskOf(g.busid), 20_000);
    for (let round = 0; round < 3; round++) {
      const flows = gs.map((g, i) => kernelFlow(g.busid, statefiles[i]!, { importArgs: ["--mode", round === 1 && i === 1 ? "relay" : "kernel"], exportArgs: ["--mode", "kernel"] }));
      const got = await Promise.all(flows.map((f, i) => waitImported(statefiles[i]!, f)));
      check(got[0]!.port !== got[1]!.port, `both imports were given port ${got[0]!.port}`);
      for (const [i, x] of got.entries()) {
        const disk = await waitFor(`a disk on ${x.local}`, () => diskOf(x.local), 30_000);
        check(sha256(disk, 8 * MIB) === sha256(imgs[i]!), `round ${round}: ${disk} (port ${x.port}) does not read back image ${i}`);
      }
      const ds = statefiles.map((s) => cli(["detach", "--statefile", s]));
      for (const d of ds) check((await d.exited).code === 0, `detach: ${d.stderr()}`);
      for (const f of flows) await ended(f, 30_000, "a flow after detach");
      await checkAllClear(statefiles);
    }
    for (const [i, g] of gs.entries()) await backOnStorage(g, imgs[i]!, 8);
  } finally {
    for (const g of gs) g.remove();
  }
  checkGadgetsGone();
}

/** Every high-speed port in use: the import says so and ends; the backend gets its device back. */
async function hubFull(): Promise<void> {
  const img = "/run/tmp/full.img";
  makeImage(img, 8);
  const g = await massStorage("full", "dummy_udc.0", img);
  const statefile = "/run/tmp/state-full";
  const filler = start("python3", [path.join(repo, "test/vm/guest/fill-ports.py")]);
  try {
    await waitFor("the ports to be filled", () => /filled \d+/.test(filler.stdout()) || filler.child.exitCode !== null, 30_000);
    check(/filled [1-9]/.test(filler.stdout()), `fill-ports: ${filler.stdout()} ${filler.stderr()}`);
    const flow = kernelFlow(g.busid, statefile, { env: VERBOSE });
    const code = await ended(flow, 60_000, "the import onto a full hub");
    check(code !== 0, "the import onto a full hub succeeded");
    check(/usbip-qrexec: no free vhci-hcd port on the high-speed hub/.test(flow.stderr()), `no clear message: ${flow.stderr().trim()}`);
    check(!existsSync(statefile), "statefile written for a failed import");
    await backOnStorage(g, img, 8);
  } finally {
    filler.child.kill("SIGTERM");
    await Promise.race([filler.exited, sleep(10_000)]);
    g.remove();
  }
  // the filler's ports free themselves once its sockets close
  await waitFor("vhci-hcd to free the filled ports", () => vhciPorts().every((p) => p.status === 4), 60_000).catch(() => check(false, `ports still used: ${JSON.stringify(vhciPorts().filter((p) => p.status !== 4))}`));
  await sleep(3000); // let the hub finish its failed enumerations before the next scenario
  checkGadgetsGone();
}

/** Two disks and a SourceSink at once through the relays, with concurrent I/O on all three. */
async function severalDevices(): Promise<void> {
  const imgs = ["/run/tmp/multi-a.img", "/run/tmp/multi-b.img"];
  for (const i of imgs) makeImage(i, 16);
  const disks = [await massStorage("multia", "dummy_udc.0", imgs[0]!), await massStorage("multib", "dummy_udc.1", imgs[1]!)];
  const ss = await sourceSink("multiss", "dummy_udc.2");
  const statefiles = ["/run/tmp/state-multi-a", "/run/tmp/state-multi-b", "/run/tmp/state-multi-ss"];
  try {
    for (const g of disks) await waitFor(`the backend's disk on ${g.busid}`, () => diskOf(g.busid), 20_000);
    const flows = [...disks, ss].map((g, i) => kernelFlow(g.busid, statefiles[i]!, { importArgs: ["--mode", "relay"], exportArgs: ["--mode", i === 1 ? "kernel" : "relay"] }));
    const got = [];
    for (const [i, f] of flows.entries()) got.push(await waitImported(statefiles[i]!, f));
    const imported = await Promise.all(got.slice(0, 2).map((x) => waitFor(`a disk on ${x.local}`, () => diskOf(x.local), 30_000)));
    // all at once, three rounds: both disks read with O_DIRECT and checksummed by separate
    // processes while usbtest's bulk/control cases (which check their data) run on the SourceSink
    const sumOf = (disk: string) => start("sh", ["-c", `dd if=${disk} bs=1M count=16 iflag=direct 2>/dev/null | sha256sum`]);
    const want = imgs.map((i) => sha256(i));
    for (let round = 0; round < 3; round++) {
      const readers = imported.map(sumOf);
      const [failures, ...done] = await Promise.all([runUsbtest(got[2]!.local, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 5), ...readers.map((r) => r.exited)]);
      check(failures.length === 0, `round ${round}: usbtest failures with both disks busy: ${failures.join(", ")}`);
      for (const [i, r] of readers.entries()) {
        check(done[i]!.code === 0, `round ${round}: reading ${imported[i]} failed: ${r.stderr()}`);
        const got = r.stdout().trim().split(/\s+/)[0];
        check(got === want[i], `round ${round}: ${imported[i]} read ${got}, want ${want[i]} (cross-talk or corruption)`);
      }
    }
    const ds = statefiles.map((s) => cli(["detach", "--statefile", s]));
    for (const d of ds) check((await d.exited).code === 0, `detach: ${d.stderr()}`);
    for (const f of flows) {
      const code = await ended(f, 30_000, "a flow after detach");
      check(code === 0, `a flow exited ${code}: ${f.stderr().trim()}`);
    }
    await checkAllClear(statefiles);
    for (const [i, g] of disks.entries()) await backOnStorage(g, imgs[i]!, 16);
  } finally {
    for (const g of [...disks, ss]) g.remove();
  }
  checkGadgetsGone();
}

export const lifecycleScenarios: Scenario[] = [
  ...(["kernel", "relay", "userspace"] as const).map((mode) => ({
    name: `${mode} mode: the device unplugged (UDC unbound) mid-read: both sides end with a clear line, all cleaned up; plugged back, it imports and reads back again`,
    run: () => unplugMidTransfer(mode),
  })),
  { name: "kernel mode: detach --statefile while a read is in flight: clean end, device back on usb-storage", run: () => detachMidTransfer("kernel", "frontend") },
  { name: "relay mode: detach --statefile while a read is in flight: clean end, device back on usb-storage", run: () => detachMidTransfer("relay", "frontend") },
  { name: "userspace mode: detach --busid while a read is in flight: clean end, drivers reattached", run: () => detachMidTransfer("userspace", "backend") },
  { name: "an export of a device already exported (kernel, relay or userspace mode) is refused with a clear line; the first export keeps working", run: alreadyExported },
  { name: "two imports racing for vhci ports (3 rounds): different ports, both disks read back", run: racingAttaches },
  { name: "two disks and a SourceSink at once through the relays with concurrent I/O: no cross-talk, usbtest passes, checksums right", run: severalDevices },
  { name: "every high-speed vhci port in use: the import fails with a clear line, no statefile, the backend gets its device back", run: hubFull },
];
