/**
 * Proof 3: the kernel's usbtest cases 0–14, 17–21, 24, 27–29 (bulk, scatter-gather, control,
 * unlink, halt, toggle) pass against a SourceSink gadget imported through the kernel-mode flow.
 */
import path from "node:path";
import type { Scenario } from "./scenarios.js";
import { sourceSink, checkGadgetsGone, interfaceDriver } from "./gadget.js";
import { execFileSync } from "node:child_process";
import { check, tryRead, waitFor } from "./lib.js";
import { checkCleanedUp, cli, kernelFlow, repo, waitImported } from "./flows.js";

export const USBTEST_CASES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 17, 18, 19, 20, 21, 24, 27, 28, 29];
const HELPER = path.join(repo, "test/vm/guest/usbtest.py");

/** Run the cases on the usbtest-bound device `busid`; returns the failures. */
export async function runUsbtest(busid: string, cases = USBTEST_CASES, iterations = 10): Promise<string[]> {
  await waitFor(`usbtest bound to ${busid}`, () => interfaceDriver(busid) === "usbtest", 30_000);
  const bus = tryRead(`/sys/bus/usb/devices/${busid}/busnum`)!;
  const dev = tryRead(`/sys/bus/usb/devices/${busid}/devnum`)!;
  const node = `/dev/bus/usb/${bus.padStart(3, "0")}/${dev.padStart(3, "0")}`;
  const out = execFileSync("/usr/bin/python3", [HELPER, node, cases.join(","), String(iterations)], { encoding: "utf8", timeout: 600_000, stdio: ["ignore", "pipe", "inherit"] });
  const results = out.trim().split("\n").map((l) => JSON.parse(l) as { test: number; ok: boolean; errno: string | null });
  const failures = results.filter((r) => !r.ok).map((r) => `test ${r.test}: ${r.errno}`);
  if (results.length !== cases.length) failures.push(`only ${results.length} of ${cases.length} results`);
  return failures;
}

export const kernelUsbtest: Scenario = {
  name: "kernel mode: usbtest 0-14, 17-21, 24, 27-29 pass through export/import",
  async run() {
    const g = await sourceSink("ss", "dummy_udc.0");
    const statefile = "/run/tmp/state-usbtest";
    try {
      const flow = kernelFlow(g.busid, statefile);
      const { port, local } = await waitImported(statefile, flow);
      const failures = await runUsbtest(local, [12, 12, 24, 24, 12, 24], 10);
      check(failures.length === 0, `usbtest failures: ${failures.join(", ")}`);
      const d = cli(["detach", "--statefile", statefile]);
      check((await d.exited).code === 0, `detach failed: ${d.stderr()}`);
      await checkCleanedUp({ port, statefile, busid: g.busid, interfaceDriver: "usbtest", flow });
    } finally {
      g.remove();
    }
    checkGadgetsGone();
  },
};
