/**
 * The VM half of the iso bench (optional: runs only when selected by name, from bench/iso.ts):
 * the iso scenarios of every path in one boot — the UVC camera and the UAC1 microphone through
 * a kernel-mode import, the frontend relay and `serve --tcp` with Debian's `usbip attach`, and
 * qemu's USB audio (iso OUT) through kernel mode, each relay, both, and the userspace backend —
 * each with its own content checks, and what they measured (iso-rates.ts) as one
 * `# bench-json {...}` line appended to the TAP file.
 */
import { appendFileSync } from "node:fs";
import type { Scenario } from "./scenarios.js";
import { cameraScenarios } from "./scenario-camera.js";
import { isoScenarios } from "./scenario-iso.js";
import { usbAudioScenarios } from "./scenario-usb-audio.js";
import { isoRates } from "./iso-rates.js";

/** the scenarios that measure a path (not the trace or hostile ones) */
const measuring = [...cameraScenarios, ...isoScenarios.filter((s) => /^iso IN/.test(s.name)), ...usbAudioScenarios];

export const benchIso: Scenario = {
  name: "bench: iso rates, camera frames/s and microphone samples/s through each path, qemu audio's ramp share",
  optional: true,
  async run() {
    const notes: string[] = [];
    for (const s of measuring) notes.push(`${s.name.slice(0, 60)}…: ${(await s.run()) ?? ""}`);
    const line = `# bench-json ${JSON.stringify({ rates: isoRates, scenarios: measuring.length })}\n`;
    const tap = process.env.VM_RESULTS_TAP;
    if (tap) appendFileSync(tap, line);
    else process.stdout.write(line);
    return `${measuring.length} scenarios`;
  },
};
