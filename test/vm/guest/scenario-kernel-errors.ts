/**
 * Proof 4: bad handshakes (garbage, devid out of range, unknown speed, EOF) and a vanished
 * device give a clear one-line error and a non-zero exit, and leave no vhci port used, no
 * statefile and no process.
 */
import { existsSync } from "node:fs";
import type { Scenario } from "./scenarios.js";
import { check, processesMatching } from "./lib.js";
import { CLI, cli, vhciPorts } from "./flows.js";

const BAD: Array<[string, string, RegExp]> = [
  ["garbage", "printf 'GET / HTTP/1.1\\r\\n'; sleep 2", /invalid handshake.*(not allowed|devid)/],
  ["devid out of range", "printf '4294967296 480\\n'; sleep 2", /invalid devid "4294967296"/],
  ["unknown speed", "printf '65538 481\\n'; sleep 2", /invalid speed "481"/],
  ["EOF before the handshake", "exit 0", /no device info received/],
];

export const kernelBadHandshakes: Scenario = {
  name: "kernel mode: bad handshakes and a vanished device fail cleanly (one line, non-zero, no port used)",
  async run() {
    for (const [what, service, expect] of BAD) {
      const statefile = `/run/tmp/state-bad-${what.replace(/\W+/g, "-")}`;
      const flow = cli(["qrexec-sim", "--", process.execPath, CLI, "import", statefile, "--", "sh", "-c", service]);
      const r = await flow.exited;
      const err = flow.stderr().trim();
      check(r.code !== 0, `${what}: import exited 0`);
      check(expect.test(err), `${what}: unexpected error output: ${err}`);
      check(err.split("\n").filter((l) => l.startsWith("usbip-qrexec")).length === 1 && !/\n\s+at /.test(err), `${what}: not a one-line error: ${err}`);
      check(!existsSync(statefile), `${what}: statefile left`);
      check(vhciPorts().every((p) => p.status === 4), `${what}: a vhci port is in use`);
    }
    // a device that does not exist (unplugged before the export started)
    const flow = cli(["qrexec-sim", "--", process.execPath, CLI, "import", "/run/tmp/state-vanished", "--", process.execPath, CLI, "export", "7-1"]);
    const r = await flow.exited;
    check(r.code !== 0, "export of a missing device exited 0");
    check(/no such USB device: 7-1/.test(flow.stderr()), `unexpected: ${flow.stderr()}`);
    check(/no device info received/.test(flow.stderr()), `the importer did not report the missing handshake: ${flow.stderr()}`);
    check(vhciPorts().every((p) => p.status === 4), "a vhci port is in use");
    check(processesMatching("usbip-qrexec.js").length === 0, "processes left");
  },
};
