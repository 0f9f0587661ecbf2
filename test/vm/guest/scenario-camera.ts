/**
 * Isochronous IN at high speed against the real kernel: our UVC camera model (`export --virtual
 * uvc-camera`, 160x120 YUY2 at 30 frames/s) imported through vhci-hcd (kernel mode, through
 * the frontend relay, and from `serve --tcp` with Debian's `usbip attach`), bound by the
 * guest's own uvcvideo, captured with v4l2-ctl (v4l-utils). uvcvideo is loaded with nodrop=0, so only whole frames reach the capture: each must carry
 * its number (first four bytes) and the pattern, numbers strictly increasing (frames the bus
 * lost are missing, never out of order). The TAP line reports whole frames per wall-clock
 * second against the nominal 30. The relay scenario then stops and restarts the stream ten
 * times (uvcvideo unlinks every queued iso URB on STREAMOFF: the unlink storm of
 * qubes-issues #2594): the camera streams again each time, every CMD_UNLINK got its one
 * RET_UNLINK, nothing is outstanding at the end, and detach leaves nothing behind.
 */
import { existsSync, readFileSync, readdirSync, realpathSync, rmSync } from "node:fs";
import { recordRate } from "./iso-rates.js";
import type { Scenario } from "./scenarios.js";
import { check, modprobe, sh, sleep, start, tryRead, waitFor } from "./lib.js";
import { checkUnlinksAnswered, cli, CLI, ourProcesses, vhciPorts, virtualOverTcp, waitImported } from "./flows.js";

const FRAME = 160 * 120 * 2;
const FPS = 30;

/** The capture node uvcvideo made for the USB device `local` (index 0; index 1 is its metadata node). */
export async function videoOf(local: string): Promise<string> {
  return waitFor(`a video node on ${local}`, () => {
    for (const v of readdirSync("/sys/class/video4linux")) {
      try {
        if (tryRead(`/sys/class/video4linux/${v}/index`) !== "0") continue;
        if (realpathSync(`/sys/class/video4linux/${v}/device`).includes(`/${local}/`) && existsSync(`/dev/${v}`)) return `/dev/${v}`;
      } catch {
        /* gone meanwhile */
      }
    }
    return undefined;
  }, 60_000);
}

interface FrameCheck {
  frames: number;
  first: number;
  last: number;
  wallS: number;
}

/** Capture `count` whole frames; check each one's number (increasing) and pattern. */
async function capture(dev: string, count: number, file: string): Promise<FrameCheck> {
  rmSync(file, { force: true });
  const t0 = Date.now();
  const v = start("v4l2-ctl", ["-d", dev, "--set-fmt-video=width=160,height=120,pixelformat=YUYV", "--stream-mmap=4", `--stream-count=${count}`, `--stream-to=${file}`]);
  const limitS = count * 2 + 60;
  const r = await Promise.race([v.exited, sleep(limitS * 1000).then(() => undefined)]);
  if (r === undefined) v.child.kill("SIGKILL");
  check(r !== undefined, `v4l2-ctl did not capture ${count} whole frames within ${limitS} s: ${v.stderr().trim()}`);
  check(r.code === 0, `v4l2-ctl exited ${r.code}: ${v.stderr().trim()}`);
  const raw = readFileSync(file);
  check(raw.length === count * FRAME, `captured ${raw.length} bytes, not ${count} frames of ${FRAME}`);
  let prev = -1;
  for (let k = 0; k < count; k++) {
    const f = raw.subarray(k * FRAME, (k + 1) * FRAME);
    const n = f.readUInt32LE(0);
    check(n > prev, `frame ${k} is number ${n}, after ${prev}: out of order`);
    for (let i = 4; i < FRAME; i++) if (f[i] !== ((n + i) & 0xff)) check(false, `frame ${k} (number ${n}): byte ${i} is ${f[i]}, not ${(n + i) & 0xff}`);
    prev = n;
  }
  return { frames: count, first: raw.readUInt32LE(0), last: prev, wallS: (Date.now() - t0) / 1000 };
}

const rate = (c: FrameCheck) => `${(c.frames / c.wallS).toFixed(1)} whole frames/s of ${FPS} (frames ${c.first}..${c.last}: ${c.last - c.first + 1 - c.frames} lost or incomplete)`;

async function camera(importMode: "kernel" | "relay", restarts: number): Promise<string> {
  // no udev in the guest: drivers are not autoloaded; nodrop=0: incomplete frames are not delivered
  sh("modprobe", ["-r", "uvcvideo"], { allowFail: true });
  sh("modprobe", ["uvcvideo", "nodrop=0"]);
  modprobe("vhci-hcd");
  const statefile = `/run/tmp/state-cam-${importMode}`;
  const flow = cli(["qrexec-sim", "--", process.execPath, CLI, "import", statefile, "--mode", importMode, "--verbose", "--", process.execPath, CLI, "export", "--virtual", "uvc-camera"]);
  const { local } = await waitImported(statefile, flow);
  check(tryRead(`/sys/bus/usb/devices/${local}/speed`) === "480", `the camera is not high speed on the frontend: ${tryRead(`/sys/bus/usb/devices/${local}/speed`)}`);
  const dev = await videoOf(local);
  const first = await capture(dev, 30, "/run/tmp/cam.raw");
  recordRate(`camera.${importMode}`, first.frames / first.wallS);
  const notes = [`30 frames in ${first.wallS.toFixed(1)} s: ${rate(first)}`];
  for (let i = 0; i < restarts; i++) {
    const c = await capture(dev, 3, "/run/tmp/cam-restart.raw");
    check(flow.child.exitCode === null, `the flow ended after restart ${i + 1}: ${flow.stderr().trim()}`);
    if (i === restarts - 1) notes.push(`${restarts} stops and restarts, the last: ${rate(c)}`);
  }
  const d = cli(["detach", "--statefile", statefile]);
  check((await d.exited).code === 0, `detach failed: ${d.stderr().trim()}`);
  const r = await Promise.race([flow.exited, sleep(30_000).then(() => undefined)]);
  check(r !== undefined, `the flow did not end within 30 s after detach: ${flow.stderr().trim()}`);
  check(r.code === 0, `the flow exited ${r.code}: ${flow.stderr().trim()}`);
  if (importMode === "relay") notes.push(checkUnlinksAnswered(flow.stderr(), restarts));
  check(vhciPorts().every((p) => p.status === 4), `vhci ports still used: ${JSON.stringify(vhciPorts().filter((p) => p.status !== 4))}`);
  check(!existsSync(statefile), "statefile left behind");
  await waitFor("no process of ours left", () => ourProcesses().length === 0, 20_000).catch(() => check(false, `processes left: ${ourProcesses().join(" | ")}`));
  return notes.join("; ");
}

/** The camera over `serve --tcp`, imported by Debian's `usbip attach`, captured, detached with `usbip detach`. */
async function cameraOverTcp(): Promise<string> {
  sh("modprobe", ["-r", "uvcvideo"], { allowFail: true });
  sh("modprobe", ["uvcvideo", "nodrop=0"]);
  modprobe("vhci-hcd");
  return virtualOverTcp("uvc-camera", 3299, [/virtual-1: .*1d6b:0108/, /0e\/01\/00/], async (local) => {
    const got = await capture(await videoOf(local), 30, "/run/tmp/cam-tcp.raw");
    recordRate("camera.tcp", got.frames / got.wallS);
    return `30 frames in ${got.wallS.toFixed(1)} s: ${rate(got)}`;
  });
}

export const cameraScenarios: Scenario[] = [
  { name: "iso IN: virtual UVC camera through vhci-hcd (kernel-mode import): uvcvideo binds it at high speed, v4l2-ctl captures whole numbered frames in order with the pattern, detach cleans up", run: () => camera("kernel", 0) },
  { name: "iso IN: virtual UVC camera through the frontend relay: whole numbered frames in order, 10 stream stops and restarts (every iso URB unlinked, each unlink answered once, nothing outstanding), detach cleans up", run: () => camera("relay", 10) },
  { name: "iso IN over TCP: serve --tcp offers the virtual UVC camera, Debian's 'usbip attach' imports it, v4l2-ctl captures whole numbered frames in order, 'usbip detach' ends it", run: cameraOverTcp },
];
