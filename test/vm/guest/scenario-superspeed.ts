/**
 * SuperSpeed against the real kernel:
 *  - a SuperSpeed gadget disk (dummy_hcd is_super_speed=Y), kernel mode and through both relays:
 *    the handshake says 5000, the import attaches on vhci-hcd's SuperSpeed hub, both sides' sysfs
 *    speed is 5000, the disk reads back, a write lands, detach gives it back;
 *  - the SuperSpeedPlus gate: a backend announcing 10000 or 20000 is attached as
 *    USB_SPEED_SUPER_PLUS (6) where vhci-hcd takes it (Linux >= 6.12) and as USB_SPEED_SUPER (5)
 *    before (6.1 answers EINVAL to 6), in kernel and relay mode, on the SuperSpeed hub.
 */
import { existsSync } from "node:fs";
import { release } from "node:os";
import type { Scenario } from "./scenarios.js";
import { withDummyHcd } from "./gadget.js";
import { storageFlow } from "./scenario-kernel-storage.js";
import { check, ended, modprobe, tryRead, waitFor } from "./lib.js";
import { CLI, cli, vhciPorts } from "./flows.js";

const VHCI = "/sys/devices/platform/vhci_hcd.0";

/** what vhci-hcd's status says of a port: hub and speed (enum usb_device_speed) */
function portSpeed(port: number): { hub: string; status: number; speed: number } | undefined {
  for (const f of ["status", ...Array.from({ length: 16 }, (_, i) => `status.${i + 1}`)]) {
    for (const line of (tryRead(`${VHCI}/${f}`) ?? "").split("\n")) {
      const t = line.trim().split(/\s+/);
      if ((t[0] === "hs" || t[0] === "ss") && Number(t[1]) === port) return { hub: t[0], status: Number(t[2]), speed: Number(t[3]) };
    }
  }
  return undefined;
}

const superPlus = () => {
  const [maj, min] = release().split(".").map(Number) as [number, number];
  return maj > 6 || (maj === 6 && min >= 12);
};

/** A backend that sends the handshake and then nothing: vhci-hcd attaches, the device never answers. */
async function gate(speed: "10000" | "20000", mode: "kernel" | "relay"): Promise<string> {
  modprobe("vhci-hcd");
  const statefile = `/run/tmp/state-ssp-${speed}-${mode}`;
  const flow = cli(["qrexec-sim", "--", process.execPath, CLI, "import", statefile, "--mode", mode, "--verbose", "--", "sh", "-c", `printf '65537 ${speed}\\n'; exec sleep 120`]);
  try {
    const port = await waitFor("the statefile", () => {
      if (flow.child.exitCode !== null) throw new Error(`the import ended early (${flow.child.exitCode}): ${flow.stderr().trim()}`);
      const t = tryRead(statefile);
      return t === undefined || t === "" ? undefined : Number(t);
    }, 60_000);
    // vhci-hcd shows a port's speed once it is USED (the root hub's SET_ADDRESS), not while
    // NOTASSIGNED; the statefile is read again each time (a relay import may move to another port)
    const { p, now } = await waitFor(`vhci port ${port} (or the port the statefile names next) in use`, () => {
      const now = Number(tryRead(statefile) ?? port);
      const x = portSpeed(now);
      return x !== undefined && x.status === 6 ? { p: x, now } : undefined;
    }, 30_000).catch((e: Error) => {
      throw new Error(`${e.message}; import stderr: ${flow.stderr().trim()}`);
    });
    const want = superPlus() ? 6 : 5;
    check(p.hub === "ss", `port ${port} is not on the SuperSpeed hub: ${JSON.stringify(p)}`);
    check(p.speed === want, `a ${speed} backend attached with speed ${p.speed} on ${release()}, expected ${want} (${want === 6 ? "SUPER_PLUS" : "SUPER"})`);
    check(new RegExp(`speed ${speed} \\(enum ${want}\\)`).test(flow.stderr()), `the import did not log the gate: ${flow.stderr().trim()}`);
    return `${speed} ${mode}: port ${now} spd ${p.speed}`;
  } finally {
    flow.child.kill("SIGTERM");
    await ended(flow, 30_000, "the import after SIGTERM");
    await waitFor("the port to be free", () => vhciPorts().every((x) => x.status === 4), 30_000);
    check(!existsSync(statefile), "statefile left behind");
  }
}

export const superSpeedScenarios: Scenario[] = [
  {
    name: "SuperSpeed gadget disk (dummy_hcd is_super_speed=Y), kernel mode: handshake 5000, vhci's SuperSpeed hub, sysfs speed 5000 both sides, reads back, write lands, detach --statefile gives it back",
    run: () => withDummyHcd(["is_super_speed=Y"], () => storageFlow("frontend", { importMode: "kernel", exportMode: "kernel", superSpeed: true })),
  },
  {
    name: "SuperSpeed gadget disk through both relays: handshake 5000, vhci's SuperSpeed hub, sysfs speed 5000 both sides, reads back, write lands, detach --busid gives it back",
    run: () => withDummyHcd(["is_super_speed=Y"], () => storageFlow("backend", { importMode: "relay", exportMode: "relay", superSpeed: true })),
  },
  {
    name: "SuperSpeedPlus gate with the real vhci-hcd: a backend announcing 10000 (kernel and relay mode) or 20000 attaches as SUPER_PLUS on >= 6.12, as SUPER before, on the SuperSpeed hub",
    async run() {
      const notes = [await gate("10000", "kernel"), await gate("10000", "relay"), await gate("20000", "kernel")];
      return `${release()}: ${notes.join("; ")}`;
    },
  },
];
