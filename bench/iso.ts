/**
 * Iso bench (npm run bench:iso, part of npm run bench): boots the real-kernel VM once and runs
 * the optional guest scenario "bench: iso rates" (test/vm/guest/bench-iso.ts): the UVC camera's
 * whole frames/s and the UAC1 microphone's sample frames/s through a kernel-mode import, the
 * frontend relay and `serve --tcp` + Debian's `usbip attach` (the microphone also through the
 * userspace backend, imported in kernel mode and through the relay), and the share of qemu's audio ramp
 * (iso OUT) arriving through kernel mode, each relay, both and the userspace backend — every
 * capture checked for content by its scenario. Prints JSON: each rate, its share of the
 * nominal rate, and its ratio to the kernel path measured in the same boot. Exit 1 if the
 * scenario failed or a rate is missing or implausible. Without qemu the VM is skipped loudly.
 * VM_KERNEL picks the kernel, as for the VM suite.
 */
import { reportVmBench, runVmBench } from "./vm-scenario.js";

const run = runVmBench("vm-iso", "bench: iso rates");
const checks = [...run.checks];
let result: Record<string, unknown> = {};
if (run.json !== undefined) {
  const rates = (run.json as { rates: Record<string, number> }).rates;
  const NOMINAL: Record<string, number> = { camera: 30, microphone: 48_000, audioOut: 1 };
  const WANT: Record<string, string[]> = { camera: ["kernel", "relay", "tcp"], microphone: ["kernel", "relay", "tcp", "userspace", "userspace-relay"], audioOut: ["kernel-kernel", "kernel-relay", "relay-kernel", "relay-relay", "userspace-kernel", "userspace-relay"] };
  const KERNEL: Record<string, string> = { camera: "kernel", microphone: "kernel", audioOut: "kernel-kernel" };
  const round = (x: number) => Math.round(x * 1000) / 1000;
  for (const [device, paths] of Object.entries(WANT)) {
    const nominal = NOMINAL[device]!;
    const base = rates[`${device}.${KERNEL[device]}`];
    const entry: Record<string, { rate: number; ofNominal: number; vsKernel: number | null }> = {};
    for (const p of paths) {
      const v = rates[`${device}.${p}`];
      if (v === undefined) {
        checks.push(`${device} through ${p}: not measured`);
        continue;
      }
      // a rate above nominal (beyond the first frames' start-up slack) is a clock bug, 0 a dead stream
      if (!(v > 0 && v <= nominal * 1.1)) checks.push(`${device} through ${p}: implausible ${v} (nominal ${nominal})`);
      entry[p] = { rate: v, ofNominal: round(v / nominal), vsKernel: base ? round(v / base) : null };
    }
    result[device] = { unit: device === "camera" ? "whole frames/s" : device === "microphone" ? "sample frames/s" : "share of the ramp arriving in order", nominal, paths: entry };
  }
}
reportVmBench("vm-iso", run, result, checks);
