/**
 * Hostile peers against the relays and the real kernel: a malicious backend answering with each
 * CVE-class RET (oversize actual_length, wrong number_of_packets, ISO offsets outside the buffer,
 * unknown or duplicate seqnum, payload on an OUT RET, absurd status) is refused by the frontend
 * relay — exit 2 naming the rule, no usbip error and no oops in the frontend kernel's log, the
 * port free afterwards; a malicious frontend is refused likewise by the backend relay and the
 * device goes back to its driver.
 */
import path from "node:path";
import { existsSync } from "node:fs";
import type { Scenario } from "./scenarios.js";
import { check, dmesgMark, dmesgSince, sleep, waitFor } from "./lib.js";
import { CLI, cli, repo, vhciPorts } from "./flows.js";
import { driverOf, interfaceDriver, makeImage, massStorage, checkGadgetsGone } from "./gadget.js";

const PEER = path.join(repo, "dist/test/vm/guest/hostile-peer.js");
// what vhci-hcd / usbip-host print when a bad PDU reaches them (dev_err lines carry the device's
// name, e.g. "usb 3-1: recv xbuf, 0", so no driver prefix is required)
const USBIP_ERRORS = /recv xbuf|cannot find a urb|unknown pdu|recv invalid request|malicious|invalid seqnum/i;

const BACKEND_CASES: Array<[string, RegExp]> = [
  ["oversize", /USBIP_ERR_ACTUAL_LENGTH/],
  ["packets", /USBIP_ERR_PACKET_COUNT/],
  ["iso-offsets", /USBIP_ERR_PACKET_COUNT/],
  ["unknown-seqnum", /USBIP_ERR_UNKNOWN_SEQNUM/],
  ["duplicate", /USBIP_ERR_UNKNOWN_SEQNUM/],
  ["out-payload", /USBIP_ERR_OUT_PAYLOAD_IN_RET/],
  ["status", /USBIP_ERR_STATUS_NOT_ALLOWED/],
];

export const hostileBackend: Scenario = {
  name: "frontend relay refuses a malicious backend's CVE-class answers (exit 2, rule named, no vhci error, no oops, port free)",
  async run() {
    for (const [what, rule] of BACKEND_CASES) {
      const since = dmesgMark();
      const statefile = `/run/tmp/state-hostile-${what}`;
      const flow = cli(["qrexec-sim", "--", process.execPath, CLI, "import", "--mode", "relay", statefile, "--", process.execPath, PEER, "backend", what]);
      const r = await Promise.race([flow.exited, sleep(60_000).then(() => undefined)]);
      check(r !== undefined, `${what}: import did not end; stderr: ${flow.stderr()}`);
      check(r!.code === 2, `${what}: exit ${r!.code}, expected 2; stderr: ${flow.stderr().trim()}`);
      check(rule.test(flow.stderr()) && /at byte \d+/.test(flow.stderr()), `${what}: rule not named: ${flow.stderr().trim()}`);
      await waitFor(`${what}: vhci ports free`, () => vhciPorts().every((p) => p.status === 4), 15_000);
      check(!existsSync(statefile), `${what}: statefile left`);
      const bad = dmesgSince(since).filter((l) => USBIP_ERRORS.test(l));
      check(bad.length === 0, `${what}: the frontend kernel saw it: ${bad.join(" | ")}`);
    }
    await sleep(3000); // let the root hub stop retrying the torn-down ports
  },
};

const FRONTEND_CASES: Array<[string, RegExp]> = [
  ["ep16", /USBIP_ERR_BAD_ENDPOINT/],
  ["negative-length", /USBIP_ERR_NEGATIVE_LENGTH/],
  ["wrong-devid", /USBIP_ERR_WRONG_DEVID/],
  ["control-length", /USBIP_ERR_CONTROL_LENGTH/],
  ["unknown-unlink", /USBIP_ERR_UNKNOWN_VICTIM/],
  ["missing-endpoint", /USBIP_ERR_NO_SUCH_ENDPOINT/],
];

export const hostileFrontend: Scenario = {
  name: "backend relay refuses a malicious frontend's CMDs (exit 2, rule named, no usbip-host error, no oops, device back on its driver)",
  async run() {
    const img = "/run/tmp/disk-hostile.img";
    makeImage(img, 4);
    const g = await massStorage("hostile", "dummy_udc.0", img);
    try {
      for (const [what, rule] of FRONTEND_CASES) {
        const since = dmesgMark();
        const flow = cli(["qrexec-sim", "--", process.execPath, PEER, "frontend", what, "--", process.execPath, CLI, "export", "--mode", "relay", g.busid]);
        const r = await Promise.race([flow.exited, sleep(60_000).then(() => undefined)]);
        check(r !== undefined, `${what}: export did not end; stderr: ${flow.stderr()}`);
        check(r!.code === 2, `${what}: exit ${r!.code}, expected 2; stderr: ${flow.stderr().trim()}`);
        check(rule.test(flow.stderr()), `${what}: rule not named: ${flow.stderr().trim()}`);
        await waitFor(`${what}: ${g.busid} back on its driver`, () => driverOf(g.busid) === "usb" && interfaceDriver(g.busid) === "usb-storage", 20_000);
        const bad = dmesgSince(since).filter((l) => USBIP_ERRORS.test(l));
        check(bad.length === 0, `${what}: usbip-host saw it: ${bad.join(" | ")}`);
        await sleep(1000); // let the previous give-back settle before the next export binds
      }
    } finally {
      g.remove();
    }
    checkGadgetsGone();
  },
};
