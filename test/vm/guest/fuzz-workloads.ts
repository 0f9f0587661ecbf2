/**
 * What a fuzzing campaign drives through the mutating relay, per device (fuzz-campaign.ts):
 * how the device is made (once per campaign), the flow that carries it (the relay that mutates
 * sits on the target's side: `import --mode relay --fuzz` for vhci, `export --mode relay --fuzz`
 * for usbip-host), and the workload that makes the class driver talk to it. A fuzzed device may
 * fail in any way: the workloads never throw for the device's misbehaviour, they are bounded in
 * time, and they say what they did in one line.
 *
 *   disk        vhci: our virtual disk; usbip-host: a dummy_hcd mass-storage gadget. dd reads it.
 *   sourcesink  a dummy_hcd SourceSink gadget (both targets; for vhci it is exported through the
 *               backend relay). usbtest's bulk, scatter-gather and unlink cases (11, 12, 24: CMD_UNLINK).
 *   audio       vhci: our virtual microphone, arecord (iso IN); usbip-host: qemu's usb-audio,
 *               aplay (iso OUT).
 *   camera      vhci: our virtual UVC camera, v4l2-ctl captures (iso IN, high speed).
 *   keyboard    vhci: our virtual boot keyboard types; the input events are read (interrupt IN).
 * camera and keyboard have no usbip-host side here: usbip-host refuses vhci devices and
 * neither qemu nor dummy_hcd offers one.
 */
import path from "node:path";
import { driverOf, interfaceDriver, makeImage, massStorage, sourceSink, type Gadget } from "./gadget.js";
import { diskOf, modprobe, sh, sleep, start, usbfsNode, waitFor, type Spawned } from "./lib.js";
import { cli, CLI, kernelFlow, repo } from "./flows.js";
import { cardOf } from "./scenario-iso.js";
import { videoOf } from "./scenario-camera.js";
import { inputEventOf } from "./scenario-virtual.js";
import { playbackCard, qemuAudio, rampFile } from "./scenario-usb-audio.js";
import { DEVICES_OF, type FuzzDevice, type FuzzTarget } from "../../../fuzz/devices.js";

export { DEVICES_OF, FUZZ_DEVICES, type FuzzDevice, type FuzzTarget } from "../../../fuzz/devices.js";

/** usbtest cases a sourcesink run drives: bulk and scatter-gather both ways, then the three unlink cases. */
export const SOURCESINK_CASES = (process.env.BENCH_FUZZ_CASES ?? "1,2,5,6,11,12,24").split(",").map(Number);
/** usbtest's iterations per case */
export const SOURCESINK_ITERATIONS = process.env.BENCH_FUZZ_ITERATIONS ?? "10";

export interface Workload {
  /** the flow, given the fuzzing arguments for the relay on the target's side */
  flow(fuzz: string[], statefile: string): Spawned;
  /** make the class driver talk to the imported device `local` (the vhci port's busid); a line saying what happened */
  use(local: string): Promise<string>;
  /** after a run: the exported device (if a real one) back on its driver */
  restored(): Promise<void>;
  remove(): void;
}

/**
 * Run `cmd` for at most `seconds`; its exit code, "killed", or "stuck in the kernel" when even
 * SIGKILL does not end it within 10 s (a process waiting uninterruptibly on a URB that never
 * completes: the kernel's hung-task detector names it after 120 s, and dmesg is read after the run).
 */
async function bounded(cmd: string, args: string[], seconds: number): Promise<{ code: number | "killed" | "stuck in the kernel"; out: string; err: string }> {
  const p = start(cmd, args);
  const r = await Promise.race([p.exited, sleep(seconds * 1000).then(() => undefined)]);
  if (r === undefined) {
    p.child.kill("SIGKILL");
    const gone = await Promise.race([p.exited, sleep(10_000).then(() => undefined)]);
    if (gone === undefined) return { code: "stuck in the kernel", out: p.stdout(), err: p.stderr() };
  }
  return { code: r === undefined ? "killed" : (r.code ?? "killed"), out: p.stdout(), err: p.stderr() };
}

const virtualFlow = (spec: string, fuzz: string[], statefile: string, exportExtra: string[] = []) =>
  cli(["qrexec-sim", "--", process.execPath, CLI, "import", statefile, "--mode", "relay", ...fuzz, "--", process.execPath, CLI, "export", "--virtual", spec, ...exportExtra]);

/**
 * A real device (a gadget or qemu's): the mutating relay on the target's side. Toward usbip-host
 * the import is in kernel mode; toward vhci-hcd the export is the backend relay, whose unlink
 * hold keeps usbip-host's own unlink race (a general protection fault in stub_rx_loop behind
 * any relaying link, 6.1 and 6.12) out of a campaign that is about vhci-hcd.
 */
const realFlow = (target: FuzzTarget, busid: string, fuzz: string[], statefile: string) =>
  kernelFlow(busid, statefile, target === "vhci" ? { importArgs: ["--mode", "relay", ...fuzz], exportArgs: ["--mode", "relay"] } : { exportArgs: ["--mode", "relay", ...fuzz] });

async function backOn(busid: string, driver: string): Promise<void> {
  await waitFor(`${busid} back on ${driver}`, () => driverOf(busid) === "usb" && interfaceDriver(busid) === driver, 30_000).catch(() => {});
}

async function gadgetWorkload(target: FuzzTarget, g: Gadget, driver: string, use: (local: string) => Promise<string>): Promise<Workload> {
  return { flow: (fuzz, statefile) => realFlow(target, g.busid, fuzz, statefile), use, restored: () => backOn(g.busid, driver), remove: () => g.remove() };
}

async function readDisk(local: string): Promise<string> {
  const disk = await waitFor("the imported disk", () => diskOf(local), 30_000).catch(() => undefined);
  if (disk === undefined) return "no disk appeared";
  const r = await bounded("sh", ["-c", `dd if=${disk} of=/dev/null bs=64k iflag=direct 2>&1`], 20);
  return `dd ${r.code === 0 ? "read the disk" : `ended ${r.code}`}`;
}

async function usbtestRun(local: string): Promise<string> {
  const bound = await waitFor(`usbtest bound to ${local}`, () => interfaceDriver(local) === "usbtest", 30_000).then(() => true, () => false);
  if (!bound) return "usbtest never bound";
  const node = usbfsNode(local);
  const r = await bounded("/usr/bin/python3", [path.join(repo, "test/vm/guest/usbtest.py"), node, SOURCESINK_CASES.join(","), SOURCESINK_ITERATIONS], 120);
  const done = r.out.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { test: number; ok: boolean });
  return `usbtest cases ${SOURCESINK_CASES.join(",")}: ${done.filter((x) => x.ok).length} passed, ${done.filter((x) => !x.ok).length} failed${r.code === "killed" ? ", stopped after 120 s" : r.code === "stuck in the kernel" ? ", stuck in the kernel after 120 s" : ""}`;
}

async function record(local: string): Promise<string> {
  const card = await cardOf(local).catch(() => undefined);
  if (card === undefined) return "no capture card appeared";
  const r = await bounded("arecord", ["-q", "-D", `hw:${card},0`, "-f", "S16_LE", "-r", "48000", "-c", "2", "-t", "raw", "--buffer-time=4000000", "-d", "2", "/dev/null"], 40);
  return `arecord ${r.code === 0 ? "captured 2 s" : `ended ${r.code}`}`;
}

async function play(local: string): Promise<string> {
  const card = await playbackCard(local).catch(() => undefined);
  if (card === undefined) return "no playback card appeared";
  const r = await bounded("aplay", ["-q", "-D", `hw:${card},0`, "-f", "S16_LE", "-r", "48000", "-c", "2", "-t", "raw", "--buffer-time=4000000", rampFile(500)], 60);
  return `aplay ${r.code === 0 ? "played the ramp" : `ended ${r.code}`}`;
}

async function capture(local: string): Promise<string> {
  const dev = await videoOf(local).catch(() => undefined);
  if (dev === undefined) return "no video node appeared";
  const r = await bounded("v4l2-ctl", ["-d", dev, "--set-fmt-video=width=160,height=120,pixelformat=YUYV", "--stream-mmap=4", "--stream-count=10", "--stream-to=/dev/null"], 60);
  return `v4l2-ctl ${r.code === 0 ? "captured 10 frames" : `ended ${r.code}`}`;
}

async function readKeys(local: string): Promise<string> {
  const event = await inputEventOf(local).catch(() => undefined);
  if (event === undefined) return "no input node appeared";
  const r = await bounded("/usr/bin/python3", [path.join(repo, "test/vm/guest/read-keys.py"), event, "16", "20"], 30);
  return `read-keys ${r.code === 0 ? "read 16 keys" : `ended ${r.code}`}`;
}

/** Make the device for a campaign (once); `img` is the disk image's path. */
export async function makeWorkload(target: FuzzTarget, device: FuzzDevice, img: string): Promise<Workload> {
  if (!DEVICES_OF[target].includes(device)) throw new Error(`no ${device} device can be fuzzed toward ${target} here`);
  const none = { restored: async () => {}, remove: () => {} };
  switch (device) {
    case "disk":
      modprobe("usb-storage", "sd_mod");
      makeImage(img, 4);
      if (target === "vhci") return { flow: (fuzz, s) => virtualFlow(`mass-storage:${img}`, fuzz, s), use: readDisk, ...none };
      return gadgetWorkload(target, await massStorage("fuzzdisk", "dummy_udc.0", img), "usb-storage", readDisk);
    case "sourcesink":
      return gadgetWorkload(target, await sourceSink("fuzzss", "dummy_udc.0"), "usbtest", usbtestRun);
    case "audio":
      modprobe("snd-usb-audio");
      if (target === "vhci") return { flow: (fuzz, s) => virtualFlow("uac-microphone", fuzz, s), use: record, ...none };
      {
        const busid = await qemuAudio();
        return { flow: (fuzz, s) => realFlow(target, busid, fuzz, s), use: play, restored: () => backOn(busid, "snd-usb-audio"), remove: () => {} };
      }
    case "camera":
      // no udev in the guest: drivers are not autoloaded; nodrop=0: incomplete frames are not delivered
      sh("modprobe", ["-r", "uvcvideo"], { allowFail: true });
      sh("modprobe", ["uvcvideo", "nodrop=0"]);
      return { flow: (fuzz, s) => virtualFlow("uvc-camera", fuzz, s), use: capture, ...none };
    case "keyboard":
      modprobe("usbhid", "hid-generic", "evdev");
      return { flow: (fuzz, s) => virtualFlow("hid-keyboard:usbip qrexec 42\n", fuzz, s, ["--type-delay", "3000"]), use: readKeys, ...none };
  }
}
