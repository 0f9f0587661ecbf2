/**
 * A vhci-hcd port that never enumerates the device it was given. Seen under emulation on 6.1:
 * the root hub resets a port whose previous device was torn down mid-enumeration before the new
 * attach published its speed ("vhci_device speed not set"), and the new device never shows up.
 * Not reproducible on demand that way (nor by powering the port off through its `disable`
 * attribute: the hub powers it back on and enumerates, measured on 6.12), so made certain here
 * by unbinding the hub driver from vhci-hcd's high-speed root hubs (every controller's: an
 * import starts on the controller after the one used last, and moves to the next): the ports
 * still take attaches, and nothing enumerates on them — the stall, on demand.
 *
 * Relay mode owns the link: it sees vhci-hcd silent with nothing outstanding, gives the port
 * up and attaches on another one, the backend none the wiser. The scenario binds the hub driver
 * again once the import has moved (so the port it moved to enumerates, and the one it gave up
 * is free); the disk reads back and detach cleans up. Kernel mode cannot move (the link is the
 * kernel's): it fails after its attach timeout with the stall's message, frees the port, and the
 * backend gets its device back.
 */
import { existsSync, readdirSync } from "node:fs";
import type { Scenario } from "./scenarios.js";
import { storageFlow } from "./scenario-kernel-storage.js";
import { check, diskOf, ended, modprobe, tryRead, waitFor, write, type Spawned } from "./lib.js";
import { checkGivenBackAfterKill, kernelFlow, vhciPorts } from "./flows.js";
import { checkGadgetsGone, makeImage, massStorage } from "./gadget.js";

const PLATFORM = "/sys/devices/platform";

/** Every vhci-hcd controller's high-speed root hub interface (usbN-0:1.0 is "N-0:1.0"), where the hub driver binds. */
function highSpeedHubInterfaces(): string[] {
  const out: string[] = [];
  for (const c of readdirSync(PLATFORM).filter((d) => /^vhci_hcd\.\d+$/.test(d))) {
    const dir = `${PLATFORM}/${c}`;
    const bus = readdirSync(dir).filter((d) => /^usb\d+$/.test(d)).find((d) => tryRead(`${dir}/${d}/speed`) === "480");
    check(bus !== undefined, `no high-speed root hub under ${c}`);
    const intf = `${bus.slice(3)}-0:1.0`;
    check(existsSync(`${dir}/${bus}/${intf}`), `no ${intf} under ${bus}`);
    out.push(intf);
  }
  check(out.length > 0, "no vhci_hcd controller");
  return out;
}

/** Unbind the hub driver from the high-speed root hubs: nothing attached there enumerates until rebind(). */
function stallHighSpeedHub(): { rebind: () => void } {
  modprobe("vhci-hcd"); // the import would load it; its hubs are needed before
  check(vhciPorts().every((p) => p.status === 4), `vhci ports in use before the scenario: ${JSON.stringify(vhciPorts().filter((p) => p.status !== 4))}`);
  const intfs = highSpeedHubInterfaces();
  for (const i of intfs) write("/sys/bus/usb/drivers/hub/unbind", i);
  let bound = false;
  return {
    rebind: () => {
      if (bound) return;
      bound = true;
      for (const i of intfs) write("/sys/bus/usb/drivers/hub/bind", i);
    },
  };
}

export const portStallScenarios: Scenario[] = [
  {
    name: "frontend relay: a vhci port that never enumerates the device (the hub driver away from vhci's root hub) is given up, the import moves to another port, the disk reads back, detach cleans up",
    run: async () => {
      let stalled = -1;
      let note = "";
      let hub: { rebind: () => void } | undefined;
      let watch: NodeJS.Timeout | undefined;
      await storageFlow("frontend", {
        importMode: "relay",
        exportMode: "kernel",
        verbose: true,
        beforeImport: () => {
          hub = stallHighSpeedHub();
          return () => {
            clearInterval(watch);
            hub?.rebind();
          };
        },
        flowStarted: (flow: Spawned) => {
          // once the import moved, the hub comes back: the port it moved to enumerates
          watch = setInterval(() => {
            const m = /attached on vhci port (\d+) through the relay \(moved from port (\d+)\)/.exec(flow.stderr());
            if (m === null) return;
            clearInterval(watch);
            stalled = Number(m[2]);
            hub?.rebind();
          }, 50);
        },
        whileImported: ({ flow, port }) => {
          const err = flow.stderr();
          check(stalled >= 0, `the import never moved: ${err.trim()}`);
          check(new RegExp(`attached on vhci port ${stalled} through the relay\n`).test(err), `the import did not attach on port ${stalled} first: ${err.trim()}`);
          check(new RegExp(`warning: vhci port ${stalled} did not enumerate the device`).test(err), `no stall noticed on port ${stalled}: ${err.trim()}`);
          check(new RegExp(`attached on vhci port ${port} through the relay \\(moved from port ${stalled}\\)`).test(err), `no move to port ${port}: ${err.trim()}`);
          check(port !== stalled, `the device is on the stalled port ${stalled}`);
          check(vhciPorts().find((p) => p.port === stalled)?.status === 4, `the stalled port ${stalled} was not released`);
          note = `moved from port ${stalled} to ${port}`;
        },
      });
      return note;
    },
  },
  {
    name: "kernel mode: a vhci port that never enumerates the device fails the import after its attach timeout with the stall's message; the port is freed and the backend gets its device back",
    run: async () => {
      const img = "/run/tmp/disk-stall.img";
      makeImage(img, 4);
      const g = await massStorage("diskstall", "dummy_udc.0", img);
      let undo: (() => void) | undefined;
      try {
        await waitFor("the backend's own disk", () => diskOf(g.busid), 20_000);
        const hub = stallHighSpeedHub();
        undo = hub.rebind;
        const statefile = "/run/tmp/state-stall";
        const flow = kernelFlow(g.busid, statefile, { importArgs: ["--mode", "kernel"] });
        const code = await ended(flow, 60_000, "the kernel-mode import on a stalled port");
        const err = flow.stderr();
        check(code !== 0, `the import exited 0 on a port that never enumerated: ${err.trim()}`);
        check(/did not enumerate on vhci port \d+ within 30 s: vhci-hcd's root hub did not take it/.test(err), `not the stall's message: ${err.trim()}`);
        check(vhciPorts().every((p) => p.status === 4), `vhci ports still used: ${JSON.stringify(vhciPorts().filter((p) => p.status !== 4))}`);
        check(!existsSync(statefile), "statefile left behind");
        await checkGivenBackAfterKill(g.busid, img, 4, () => err.trim());
        return `exit ${code}`;
      } finally {
        undo?.();
        g.remove();
        checkGadgetsGone();
      }
    },
  },
];
