/**
 * Issue 5's virtual-device proofs against the real kernel: our TypeScript device models,
 * exported with `export --virtual`, are enumerated by vhci-hcd through `import` (kernel mode)
 * over qrexec-sim: the mass-storage model becomes a /dev/sdX that reads back the image's sha256
 * and takes a 1 MiB write into the image; the keyboard's keystrokes arrive as input events.
 * Detach frees the port and ends both sides with status 0.
 */
import { existsSync, readdirSync, realpathSync } from "node:fs";
import path from "node:path";
import type { Scenario } from "./scenarios.js";
import { makeImage } from "./gadget.js";
import { check, checkWriteLands, diskOf, modprobe, sha256, start, waitFor } from "./lib.js";
import { cli, CLI, repo, vhciPorts, waitImported } from "./flows.js";

const MIB = 1 << 20;

function virtualFlow(spec: string, statefile: string, importMode: "kernel" | "relay", extra: string[] = []) {
  return cli(["qrexec-sim", "--", process.execPath, CLI, "import", statefile, "--mode", importMode, "--", process.execPath, CLI, "export", "--virtual", spec, ...extra]);
}

async function detachAndCheck(statefile: string, flow: ReturnType<typeof cli>): Promise<void> {
  const d = cli(["detach", "--statefile", statefile]);
  check((await d.exited).code === 0, `detach failed: ${d.stderr().trim()}`);
  const r = await Promise.race([flow.exited, new Promise<undefined>((res) => setTimeout(() => res(undefined), 30_000))]);
  check(r !== undefined, `the flow did not end within 30 s after detach: ${flow.stderr().trim()}`);
  check(r.code === 0, `the flow exited ${r.code}: ${flow.stderr().trim()}`);
  check(vhciPorts().every((p) => p.status === 4), `vhci ports still used: ${JSON.stringify(vhciPorts().filter((p) => p.status !== 4))}`);
  check(!existsSync(statefile), "statefile left behind");
}

async function virtualDisk(importMode: "kernel" | "relay"): Promise<void> {
  modprobe("usb-storage", "sd_mod"); // no udev in the guest: drivers are not autoloaded
  const img = "/run/tmp/virtual-disk.img";
  makeImage(img, 16);
  const want = sha256(img);
  const statefile = "/run/tmp/state-virtual-disk";
  const flow = virtualFlow(`mass-storage:${img}`, statefile, importMode);
  const { local } = await waitImported(statefile, flow);
  const disk = await waitFor(`a disk on the virtual device ${local}`, () => diskOf(local), 60_000);
  check(sha256(disk, 16 * MIB) === want, `${disk} does not read back the image`);
  checkWriteLands(disk, img); // 1 MiB at 5 MiB through the disk lands in the image file
  await detachAndCheck(statefile, flow);
}

// Linux input key codes (include/uapi/linux/input-event-codes.h) for the typed text
const KEY: Record<string, number> = { u: 22, s: 31, b: 48, i: 23, p: 25, q: 16, r: 19, e: 18, x: 45, c: 46, " ": 57, "4": 5, "2": 3, "\n": 28 };
const TEXT = "usbip qrexec 42\n";

/** The evdev node the input layer made for the USB device `local` (e.g. 3-1), once it exists. */
export function inputEventOf(local: string): Promise<string> {
  return waitFor(`an input event node for ${local}`, () => {
    for (const e of readdirSync("/sys/class/input").filter((n) => n.startsWith("event"))) {
      try {
        if (realpathSync(`/sys/class/input/${e}`).includes(`/${local}/`) && existsSync(`/dev/input/${e}`)) return `/dev/input/${e}`;
      } catch {
        /* gone meanwhile */
      }
    }
    return undefined;
  }, 30_000);
}

export const virtualScenarios: Scenario[] = [
  { name: "virtual mass-storage (export --virtual) through vhci-hcd, kernel-mode import: /dev/sdX reads back the image, 1 MiB write lands, detach cleans up", run: () => virtualDisk("kernel") },
  { name: "virtual mass-storage through the frontend relay: reads back, write lands, detach cleans up", run: () => virtualDisk("relay") },
  {
    name: "virtual HID keyboard through vhci-hcd: the typed text arrives as input key events, detach cleans up",
    async run() {
      modprobe("usbhid", "hid-generic", "evdev");
      const statefile = "/run/tmp/state-virtual-kbd";
      const flow = virtualFlow(`hid-keyboard:${TEXT}`, statefile, "kernel", ["--type-delay", "8000"]);
      const { local } = await waitImported(statefile, flow);
      const event = await inputEventOf(local);
      const reader = start("/usr/bin/python3", [path.join(repo, "test/vm/guest/read-keys.py"), event, String(TEXT.length), "60"]);
      const r = await reader.exited;
      const got = reader.stdout().trim().split("\n").pop()!.split(" ").filter(Boolean).map(Number);
      const want = [...TEXT].map((c) => KEY[c]!);
      check(r.code === 0, `read-keys failed: ${reader.stderr()}`);
      check(JSON.stringify(got) === JSON.stringify(want), `key codes ${JSON.stringify(got)}, expected ${JSON.stringify(want)} for ${JSON.stringify(TEXT)}`);
      await detachAndCheck(statefile, flow);
    },
  },
];
