/**
 * The import lifecycle's move (frontend/import-lifecycle.ts) on a fake vhci-hcd tree: a mode
 * that owns the link gives up a port that never enumerates and attaches on another one; the
 * statefile and the `port` record follow it; a mode that cannot move (kernel) fails with the
 * stall's message once the attach timeout passes. The proof against the real vhci-hcd is the VM
 * scenario "frontend relay: a vhci port that never enumerates".
 */
import test from "ava";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { runImport, MAX_PORT_MOVES, STALL_QUIET_MS } from "../frontend/import-lifecycle.js";
import { GlueErrorCode } from "../kernel-glue/errors.js";
import type { Logger } from "../shared/log.js";
import { fakeRoot, put, RecordingSysfs } from "./helpers/fake-sysfs.js";

const HEADER = "hub port sta spd dev      sockfd local_busid";
const line = (port: number, sta: number, local: string) => `hs  ${String(port).padStart(4, "0")} ${String(sta).padStart(3, "0")} ${sta === 4 ? "000 00000000 000000" : "003 00010002 000003"} ${local}`;

/** A vhci tree with 4 hs ports; `state[port]` = [status, local busid]. */
function vhciTree(root: string, state: Record<number, [number, string]>): void {
  const lines = [HEADER, ...[0, 1, 2, 3].map((p) => line(p, state[p]?.[0] ?? 4, state[p]?.[1] ?? "0-0"))];
  put(root, "devices/platform/vhci_hcd.0/status", lines.join("\n") + "\n");
}

function setup() {
  const root = fakeRoot();
  put(root, "module/vhci_hcd/refcnt", "0\n");
  put(root, "devices/platform/vhci_hcd.0/nports", "4\n");
  put(root, "devices/platform/vhci_hcd.0/attach", "");
  put(root, "devices/platform/vhci_hcd.0/detach", "");
  vhciTree(root, {});
  const dir = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-move-"));
  process.env.USBIP_QREXEC_RUNDIR = path.join(dir, "run");
  const logs: string[] = [];
  const log: Logger = { info: (m) => logs.push(m), notice: (m) => logs.push(m), warn: (m) => logs.push(`warning: ${m}`) };
  const signal = { promise: new Promise<NodeJS.Signals>(() => {}), dispose: () => {} };
  return { root, sysfs: new RecordingSysfs(root), statefile: path.join(dir, "state"), logs, log, signal };
}

test.serial("a port that never enumerates is given up: the import moves to another port, statefile and record follow", async (t) => {
  const s = setup();
  vhciTree(s.root, { 0: [5, "0-0"] }); // port 0 attached, never enumerated (NOTASSIGNED)
  const moves: number[] = [];
  let statefileDuringMove: string | undefined;
  const code = await runImport({ statefile: s.statefile, log: s.log, sysfs: s.sysfs, mode: "relay", remote: { remote: "sys-usb", busid: "2-1" }, signal: s.signal }, async () => {
    const a = {
      port: 0,
      untilEnd: async () => {
        // what the statefile and the record say while the device is in use
        t.is(readFileSync(s.statefile, "utf8"), "1\n");
        t.true(existsSync(path.join(process.env.USBIP_QREXEC_RUNDIR!, "import-port-1.json")));
        t.false(existsSync(path.join(process.env.USBIP_QREXEC_RUNDIR!, "import-port-0.json")));
        vhciTree(s.root, {}); // the link ended: the kernel freed the port and removed the device
        rmSync(path.join(s.root, "bus/usb/devices/3-2"), { recursive: true });
        return "link closed";
      },
      move: {
        quietMs: () => (moves.length === 0 ? STALL_QUIET_MS : 0),
        toAnotherPort: async () => {
          statefileDuringMove = readFileSync(s.statefile, "utf8");
          moves.push(a.port);
          vhciTree(s.root, { 1: [6, "3-2"] }); // port 0 given up, port 1 enumerates
          put(s.root, "bus/usb/devices/3-2/devnum", "2\n");
          return 1;
        },
      },
    };
    return a;
  });
  t.is(code, 0);
  t.deepEqual(moves, [0]);
  t.is(statefileDuringMove, "0\n");
  t.true(s.logs.some((l) => /warning: vhci port 0 did not enumerate the device .*attaching on another port/.test(l)), s.logs.join("\n"));
  t.true(s.logs.some((l) => /attached on vhci port 1 \(moved from port 0\)/.test(l)));
  t.true(s.logs.includes("device enumerated as 3-2"));
  t.false(existsSync(s.statefile));
  t.is(readFileSync(path.join(process.env.USBIP_QREXEC_RUNDIR!, "vhci-last-port"), "utf8"), "1\n");
});

test.serial(`at most ${MAX_PORT_MOVES} moves, then the stall's message; the last port is released and the statefile removed`, async (t) => {
  const s = setup();
  vhciTree(s.root, { 0: [5, "0-0"] });
  let port = 0;
  const e = await t.throwsAsync(
    runImport({ statefile: s.statefile, log: s.log, sysfs: s.sysfs, mode: "relay", remote: { remote: "", busid: "" }, signal: s.signal, attachTimeoutMs: 300 }, async () => ({
      port: 0,
      untilEnd: async () => "never",
      move: {
        quietMs: () => STALL_QUIET_MS,
        toAnotherPort: async () => {
          port++;
          vhciTree(s.root, { [port]: [5, "0-0"] });
          return port;
        },
      },
    })),
  );
  t.is((e as { code?: string }).code, GlueErrorCode.TIMEOUT);
  t.regex(e!.message, /did not enumerate on vhci port 3 within 0 s: vhci-hcd's root hub did not take it/);
  t.is(port, MAX_PORT_MOVES);
  t.deepEqual(s.sysfs.writes.at(-1), ["devices/platform/vhci_hcd.0/detach", "3"]);
  t.false(existsSync(s.statefile));
});

test.serial("kernel mode (no move): a port that never enumerates fails after the attach timeout, naming the port and what to do", async (t) => {
  const s = setup();
  vhciTree(s.root, { 2: [5, "0-0"] });
  const e = await t.throwsAsync(runImport({ statefile: s.statefile, log: s.log, sysfs: s.sysfs, mode: "kernel", remote: { remote: "", busid: "" }, signal: s.signal, attachTimeoutMs: 200 }, async () => ({ port: 2, untilEnd: async () => "never" })));
  t.is((e as { code?: string }).code, GlueErrorCode.TIMEOUT);
  t.regex(e!.message, /vhci port 2 .*detach and attach again/);
  t.deepEqual(s.sysfs.writes.at(-1), ["devices/platform/vhci_hcd.0/detach", "2"]);
  t.false(existsSync(s.statefile));
});
