/**
 * Isochronous IN against the real kernel: our UAC1 microphone model (`export --virtual
 * uac-microphone`) imported through vhci-hcd (kernel mode and through the frontend relay, over
 * qrexec-sim; and with Debian's `usbip attach` from `serve --tcp`), bound by the guest's own
 * snd-usb-audio, captured with arecord from alsa-utils. The model's sample frame n carries n as a
 * 32-bit counter (left channel low half, right high), so the capture is checked sample by
 * sample: every step is +1 or a forward jump (USB frames lost: the model's clock is the wall
 * clock, and under emulation the host's 12 one-millisecond URBs do not cover a round trip),
 * never a value out of order; the TAP line reports the sample frames per wall-clock second
 * delivered against the nominal 48000 and the discontinuities. The relay scenario stops and
 * restarts the stream ten times (snd-usb-audio unlinks every queued iso URB on each stop).
 */
import { existsSync, readFileSync, readdirSync, realpathSync, rmSync } from "node:fs";
import { recordRate } from "./iso-rates.js";
import type { Scenario } from "./scenarios.js";
import path from "node:path";
import { check, dmesgMark, dmesgSince, modprobe, sh, sleep, start, waitFor } from "./lib.js";
import { checkIsoTrace, checkUnlinksAnswered, cli, CLI, kernelFlow, ourProcesses, repo, vhciPorts, virtualOverTcp, waitImported } from "./flows.js";

const RATE = 48_000;

/** The ALSA card snd-usb-audio made for the USB device `local` (e.g. 3-1), once its capture node exists. */
export async function cardOf(local: string): Promise<number> {
  return waitFor(`a sound card on ${local}`, () => {
    for (const c of readdirSync("/sys/class/sound").filter((n) => /^card\d+$/.test(n))) {
      try {
        const dev = realpathSync(`/sys/class/sound/${c}/device`);
        const n = Number(c.slice(4));
        if (dev.includes(`/${local}/`) && existsSync(`/dev/snd/pcmC${n}D0c`)) return { n };
      } catch {
        /* gone meanwhile */
      }
    }
    return undefined;
  }, 60_000).then((c) => c.n);
}

export interface RampCheck {
  /** sample frames captured */
  samples: number;
  /** places where the next sample is not the previous + 1 (frames lost) */
  discontinuities: number;
  /** samples the jumps skipped */
  skipped: number;
}

/** Check a capture of the counter (S16_LE stereo = one 32-bit LE word per sample frame): each step +1 or forward. */
export function checkRamp(raw: Buffer): RampCheck {
  const n = raw.length >> 2;
  let discontinuities = 0;
  let skipped = 0;
  for (let i = 1; i < n; i++) {
    const prev = raw.readUInt32LE(i * 4 - 4);
    const cur = raw.readUInt32LE(i * 4);
    if (cur === prev + 1) continue;
    check(cur > prev && cur - prev < 3600 * RATE, `sample frame ${i}: ${cur} after ${prev} is not the counter going forward`);
    discontinuities++;
    skipped += cur - prev - 1;
  }
  return { samples: n, discontinuities, skipped };
}

/** arecord from card `card` for `seconds`; returns the ramp check and the wall time it took. */
async function capture(card: number, seconds: number, file: string): Promise<RampCheck & { wallS: number }> {
  rmSync(file, { force: true });
  const t0 = Date.now();
  // a 4 s buffer: ALSA ends a read with EIO when no period arrives within the buffer's time, and
  // under emulation the stream runs well below its nominal rate
  const rec = start("arecord", ["-q", "-D", `hw:${card},0`, "-f", "S16_LE", "-r", String(RATE), "-c", "2", "-t", "raw", "--buffer-time=4000000", "--period-time=100000", "-d", String(seconds), file]);
  const r = await Promise.race([rec.exited, sleep(seconds * 1000 * 20 + 60_000).then(() => undefined)]);
  if (r === undefined) rec.child.kill("SIGKILL");
  check(r !== undefined, `arecord did not end within ${seconds * 20 + 60} s: ${rec.stderr().trim()}`);
  check(r.code === 0, `arecord exited ${r.code}: ${rec.stderr().trim()}`);
  const raw = readFileSync(file);
  // arecord -d counts samples, not time: it ends with all of them
  check(raw.length === 4 * RATE * seconds, `arecord captured ${raw.length >> 2} sample frames, not ${RATE * seconds}`);
  return { ...checkRamp(raw), wallS: (Date.now() - t0) / 1000 };
}

async function endsCleanly(statefile: string, flow: ReturnType<typeof cli>, detachArgs: string[]): Promise<void> {
  const d = cli(detachArgs);
  check((await d.exited).code === 0, `detach failed: ${d.stderr().trim()}`);
  const r = await Promise.race([flow.exited, sleep(30_000).then(() => undefined)]);
  check(r !== undefined, `the flow did not end within 30 s after detach: ${flow.stderr().trim()}`);
  check(r.code === 0, `the flow exited ${r.code}: ${flow.stderr().trim()}`);
  check(vhciPorts().every((p) => p.status === 4), `vhci ports still used: ${JSON.stringify(vhciPorts().filter((p) => p.status !== 4))}`);
  check(statefile === "" || !existsSync(statefile), "statefile left behind");
  await waitFor("no process of ours left", () => ourProcesses().length === 0, 20_000).catch(() => check(false, `processes left: ${ourProcesses().join(" | ")}`));
}

const rate = (c: RampCheck & { wallS: number }) => `${Math.round(c.samples / c.wallS)} sample frames/s of ${RATE} (${((100 * c.samples) / (RATE * c.wallS)).toFixed(0)}%), ${c.discontinuities} discontinuities, ${((100 * c.skipped) / (c.skipped + c.samples)).toFixed(0)}% lost`;

async function microphone(importMode: "kernel" | "relay", restarts: number, withTrace = false): Promise<string> {
  modprobe("snd-usb-audio"); // no udev in the guest: drivers are not autoloaded
  const statefile = `/run/tmp/state-mic-${importMode}`;
  const trace = withTrace ? "/run/tmp/mic.pcapng" : undefined;
  if (trace) rmSync(trace, { force: true });
  const flow = cli(["qrexec-sim", "--", process.execPath, CLI, "import", statefile, "--mode", importMode, ...(trace ? ["--trace", trace] : []), "--", process.execPath, CLI, "export", "--virtual", "uac-microphone"]);
  const { local } = await waitImported(statefile, flow);
  const card = await cardOf(local);
  const first = await capture(card, 3, "/run/tmp/mic.raw");
  if (!withTrace) recordRate(`microphone.${importMode}`, first.samples / first.wallS);
  const notes = [`3 s of samples in ${first.wallS.toFixed(1)} s: ${rate(first)}`];
  // stop and restart: each stop unlinks every queued iso URB; the stream must come back each time
  for (let i = 0; i < restarts; i++) {
    const c = await capture(card, 1, "/run/tmp/mic-restart.raw");
    check(flow.child.exitCode === null, `the flow ended after restart ${i + 1}: ${flow.stderr().trim()}`);
    if (i === restarts - 1) notes.push(`${restarts} restarts, the last: ${rate(c)}`);
  }
  await endsCleanly(statefile, flow, ["detach", "--statefile", statefile]);
  if (trace) notes.push(checkIsoTrace(trace));
  const dmesg = sh("dmesg");
  check(!/BUG:|Oops|general protection|usbip.*(error|invalid)|isoc.*invalid/i.test(dmesg.split("\n").slice(-200).join("\n")), `kernel log: ${dmesg.split("\n").slice(-8).join(" | ")}`);
  return notes.join("; ");
}

/** The microphone over `serve --tcp`, imported by Debian's `usbip attach`, captured, detached with `usbip detach`. */
async function microphoneOverTcp(): Promise<string> {
  modprobe("vhci-hcd", "snd-usb-audio");
  return virtualOverTcp("uac-microphone", 3298, [/virtual-1: .*1d6b:0107/, /01\/01\/00/], async (local) => {
    const got = await capture(await cardOf(local), 2, "/run/tmp/mic-tcp.raw");
    recordRate("microphone.tcp", got.samples / got.wallS);
    return `2 s of samples in ${got.wallS.toFixed(1)} s: ${rate(got)}`;
  });
}

/**
 * Iso IN through the userspace backend. qemu emulates no iso IN device and dummy_hcd has no iso,
 * so the device with a real iso IN endpoint on a real host controller is the microphone model
 * imported through vhci-hcd (the inner import); `export --mode userspace` passes that device on
 * (usbfs iso URBs: SUBMITURB, REAPURBNDELAY, DISCARDURB on each unlink) and it is imported again
 * (the outer import, kernel mode or the frontend relay), where snd-usb-audio binds it and arecord
 * captures the counter sample by sample. The outer import must land on another vhci controller
 * than the inner device (frontend/vhci port order: a controller carrying an exported device
 * goes last), or both SET_CONFIGURATIONs wait on one bandwidth_mutex.
 */
async function microphoneThroughUserspace(importMode: "kernel" | "relay", restarts: number): Promise<string> {
  modprobe("vhci-hcd", "snd-usb-audio");
  const innerState = "/run/tmp/state-mic-inner";
  const inner = cli(["qrexec-sim", "--", process.execPath, CLI, "import", innerState, "--", process.execPath, CLI, "export", "--virtual", "uac-microphone"]);
  const { port: innerPort, local: innerLocal } = await waitImported(innerState, inner);
  await cardOf(innerLocal); // snd-usb-audio has it: the userspace export must take it from its driver
  const statefile = `/run/tmp/state-mic-userspace-${importMode}`;
  const flow = kernelFlow(innerLocal, statefile, { exportArgs: ["--mode", "userspace", "--verbose"], importArgs: ["--mode", importMode, "--verbose"] });
  const { port, local } = await waitImported(statefile, flow);
  // global port numbers run controller by controller: nports / (status files) each
  const statusFiles = readdirSync("/sys/devices/platform/vhci_hcd.0").filter((n) => /^status(\.\d+)?$/.test(n)).length;
  const perController = Number(readFileSync("/sys/devices/platform/vhci_hcd.0/nports", "utf8")) / statusFiles;
  check(Math.floor(port / perController) !== Math.floor(innerPort / perController), `the outer import took port ${port}, on the inner device's controller (port ${innerPort})`);
  const card = await cardOf(local);
  const first = await capture(card, 3, "/run/tmp/mic-userspace.raw");
  recordRate(importMode === "kernel" ? "microphone.userspace" : "microphone.userspace-relay", first.samples / first.wallS);
  const notes = [`outer port ${port}, inner ${innerPort}; 3 s of samples in ${first.wallS.toFixed(1)} s: ${rate(first)}`];
  for (let i = 0; i < restarts; i++) {
    const c = await capture(card, 1, "/run/tmp/mic-userspace-restart.raw");
    check(flow.child.exitCode === null, `the flow ended after restart ${i + 1}: ${flow.stderr().trim()}`);
    if (i === restarts - 1) notes.push(`${restarts} restarts, the last: ${rate(c)}`);
  }
  const log = flow.stderr();
  check(log.includes("from userspace (usbfs)") && log.includes("one poll loop"), `the export did not serve from userspace through usbfs in its poll loop: ${log.trim().split("\n").slice(-5).join(" | ")}`);
  check(!/isochronous .*refused|iso.*will be refused/.test(log), `the userspace backend refused iso: ${log.match(/.*refused.*/)?.[0]}`);
  const d = cli(["detach", "--statefile", statefile]);
  check((await d.exited).code === 0, `detach failed: ${d.stderr().trim()}`);
  const r = await Promise.race([flow.exited, sleep(30_000).then(() => undefined)]);
  check(r !== undefined && r.code === 0, `the outer flow did not end cleanly after detach (${r?.code}): ${flow.stderr().trim()}`);
  if (importMode === "relay") notes.push(checkUnlinksAnswered(flow.stderr(), restarts));
  // the userspace export gave the inner device back: snd-usb-audio has it again
  await cardOf(innerLocal);
  await endsCleanly(innerState, inner, ["detach", "--statefile", innerState]);
  const dmesg = sh("dmesg");
  check(!/BUG:|Oops|general protection|usbip.*(error|invalid)|isoc.*invalid/i.test(dmesg.split("\n").slice(-200).join("\n")), `kernel log: ${dmesg.split("\n").slice(-8).join(" | ")}`);
  return notes.join("; ");
}

const HOSTILE_ISO = path.join(repo, "dist/test/vm/guest/hostile-iso.js");
// what vhci-hcd prints when a bad iso PDU reaches it (usbip_recv_iso and friends)
const VHCI_ISO_ERRORS = /recv iso|invalid num packets|recv xbuf|malicious|iso frame|number_of_packets/i;
const HOSTILE_ISO_CASES: Array<[string, RegExp]> = [
  ["packets", /USBIP_ERR_PACKET_COUNT/],
  ["offsets", /USBIP_ERR_ISO_MISMATCH/],
  ["sum", /USBIP_ERR_ISO_SUM/],
  ["error-count", /USBIP_ERR_ERROR_COUNT/],
  ["non-iso", /USBIP_ERR_(PACKET_COUNT|TRUNCATED|ISO)/],
  ["iso-on-control", /USBIP_ERR_PACKET_COUNT/],
];

/** A malicious backend breaks a live iso stream; the frontend relay refuses it before vhci-hcd sees it. */
async function hostileIsoBackend(): Promise<string> {
  modprobe("snd-usb-audio");
  const seen: string[] = [];
  for (const [what, rule] of HOSTILE_ISO_CASES) {
    const since = dmesgMark();
    const statefile = `/run/tmp/state-hostile-iso-${what}`;
    const flow = cli(["qrexec-sim", "--", process.execPath, CLI, "import", statefile, "--mode", "relay", "--", process.execPath, HOSTILE_ISO, what]);
    const { local } = await waitImported(statefile, flow);
    const card = await cardOf(local);
    // a live stream: capture until the violation ends it (iso-on-control: at the stream's stop)
    const rec = start("arecord", ["-q", "-D", `hw:${card},0`, "-f", "S16_LE", "-r", String(RATE), "-c", "2", "-t", "raw", "--buffer-time=4000000", "-d", "2", "/run/tmp/hostile.raw"]);
    const r = await Promise.race([flow.exited, sleep(120_000).then(() => undefined)]);
    check(r !== undefined, `${what}: import did not end; stderr: ${flow.stderr().trim()}`);
    await Promise.race([rec.exited, sleep(15_000).then(() => rec.child.kill("SIGKILL"))]);
    check(r.code === 2, `${what}: import exit ${r.code}, expected 2; stderr: ${flow.stderr().trim()}`);
    const line = flow.stderr().trim().split("\n").find((l) => rule.test(l)) ?? "";
    check(/at byte \d+/.test(line) && /seqnum \d+/.test(line), `${what}: rule, seqnum and offset not named: ${flow.stderr().trim()}`);
    await waitFor(`${what}: vhci ports free`, () => vhciPorts().every((p) => p.status === 4), 15_000);
    check(!existsSync(statefile), `${what}: statefile left`);
    const bad = dmesgSince(since).filter((l) => VHCI_ISO_ERRORS.test(l) || /BUG:|Oops|general protection/.test(l));
    check(bad.length === 0, `${what}: the frontend kernel saw it: ${bad.join(" | ")}`);
    seen.push(`${what}: ${/USBIP_ERR_\w+/.exec(line)?.[0]}`);
  }
  await waitFor("no process of ours left", () => ourProcesses().length === 0, 20_000).catch(() => check(false, `processes left: ${ourProcesses().join(" | ")}`));
  return seen.join(", ");
}

export const isoScenarios: Scenario[] = [
  { name: "iso IN: virtual UAC1 microphone through vhci-hcd (kernel-mode import): snd-usb-audio binds it, arecord captures the ramp in order, detach cleans up", run: () => microphone("kernel", 0) },
  { name: "iso IN: virtual UAC1 microphone through the frontend relay: the ramp in order, 10 stream stops and restarts (every iso URB unlinked each time), detach cleans up", run: () => microphone("relay", 10) },
  // tshark dissecting ~10^4 iso events costs about a minute under TCG: in the full suite only
  { name: "iso trace: the frontend relay's --trace of a microphone stream decodes in tshark with the iso descriptors, nothing malformed", run: () => microphone("relay", 0, true) },
  { name: "hostile iso: a malicious backend breaks a live microphone stream with each iso violation in turn; the frontend relay refuses each before vhci-hcd sees it (exit 2, rule, seqnum and offset named), the port frees, the kernel logs nothing", run: hostileIsoBackend },
  { name: "iso IN through the userspace backend: the imported microphone exported in userspace mode (usbfs iso URBs) and imported again in kernel mode, the ramp in order, both given back", run: () => microphoneThroughUserspace("kernel", 0) },
  { name: "iso IN through the userspace backend and the frontend relay: the ramp in order, 10 stream stops and restarts (every iso URB discarded in usbfs each time), both given back", run: () => microphoneThroughUserspace("relay", 10) },
  { name: "iso IN over TCP: serve --tcp offers the virtual microphone, Debian's 'usbip attach' imports it, arecord captures the ramp in order, 'usbip detach' ends it", run: microphoneOverTcp },
];
