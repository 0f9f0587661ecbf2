/**
 * Proof 1 and 2 of the kernel-mode flow: the gadget disk exported with `export` and imported
 * with `import` through `qrexec-sim` reads back byte-identical, a 1 MiB write lands in the
 * image; then a detach from the frontend (--statefile) or from the backend (--busid) frees the
 * vhci port, removes the statefile, gives the gadget back to its driver, leaves no process.
 */
import { writeFileSync } from "node:fs";
import type { Scenario } from "./scenarios.js";
import { makeImage, massStorage, checkGadgetsGone } from "./gadget.js";
import { check, checkWriteLands, diskOf, sh, sha256, tryRead, waitFor } from "./lib.js";

/** A relay trace read by tshark: many events, SCSI READ(10)/WRITE(10) decoded, nothing malformed at the USB level. */
function checkTrace(file: string): void {
  // the count without dissecting (capinfos, from tshark's wireshark-common): each dissecting pass
  // over a 16 MiB read's trace costs about a minute under TCG
  const count = Number(/Number of packets:\s*(\d+)/.exec(sh("capinfos", ["-c", "-M", file]))?.[1] ?? 0);
  check(count > 200, `${file}: only ${count} events`);
  const scsi = sh("tshark", ["-r", file, "-Y", "scsi"], { timeoutMs: 120_000 });
  check(/Read\(10\)/.test(scsi) && /Write\(10\)/.test(scsi), `${file}: no SCSI Read(10)/Write(10) decoded`);
  const bad = sh("tshark", ["-r", file, "-Y", "_ws.malformed and not scsi"], { timeoutMs: 120_000 }).trim();
  check(bad === "", `${file}: malformed events: ${bad.split("\n").slice(0, 3).join(" | ")}`);
}
import { checkCleanedUp, cli, kernelFlow, vhciPorts, waitImported } from "./flows.js";
import type { Spawned } from "./lib.js";

const MIB = 1 << 20;

export interface Modes {
  importMode: "kernel" | "relay";
  exportMode: "kernel" | "relay" | "userspace";
  /** relay modes: write pcapng traces on both sides and check them with tshark */
  trace?: boolean;
  /** frontend relay: a policy file's text */
  policy?: string;
  /** run this CLI instead of the tree's bin/usbip-qrexec.js (an unpacked .deb) */
  cli?: string;
  /** called before the import starts; what it returns is called when the flow is over, whatever happened */
  beforeImport?: () => (() => void) | void;
  /** called once the flow started (before the device is imported) */
  flowStarted?: (flow: Spawned) => void;
  /** called while the device is imported (after the read and the write), with the flow and its port */
  whileImported?: (o: { flow: Spawned; port: number }) => void;
  /** import --verbose (its log lines in the flow's stderr) */
  verbose?: boolean;
  /** a SuperSpeed gadget (dummy_hcd is_super_speed=Y): the handshake, the vhci hub and both sides' sysfs speed say 5000 */
  superSpeed?: boolean;
}
const KERNEL: Modes = { importMode: "kernel", exportMode: "kernel" };

export async function storageFlow(detachFrom: "frontend" | "backend", modes: Modes = KERNEL): Promise<void> {
  const img = `/run/tmp/disk-${detachFrom}.img`;
  makeImage(img, 16);
  const g = await massStorage(`disk${detachFrom[0]}`, "dummy_udc.0", img);
  const statefile = `/run/tmp/state-${detachFrom}`;
  let undo: (() => void) | undefined;
  try {
    await waitFor("the backend's own disk", () => diskOf(g.busid), 20_000);
    const traces = modes.trace ? ["/run/tmp/frontend.pcapng", "/run/tmp/backend.pcapng"] : [];
    if (modes.policy !== undefined) writeFileSync("/run/tmp/policy", modes.policy);
    if (modes.superSpeed) check(tryRead(`/sys/bus/usb/devices/${g.busid}/speed`) === "5000", `the gadget is not SuperSpeed: speed ${tryRead(`/sys/bus/usb/devices/${g.busid}/speed`)}`);
    undo = modes.beforeImport?.() ?? undefined;
    const flow = kernelFlow(g.busid, statefile, {
      importArgs: ["--mode", modes.importMode, ...(modes.trace ? ["--trace", traces[0]!] : []), ...(modes.policy !== undefined ? ["--policy", "/run/tmp/policy"] : []), ...(modes.superSpeed || modes.verbose ? ["--verbose"] : [])],
      exportArgs: ["--mode", modes.exportMode, ...(modes.trace ? ["--trace", traces[1]!] : [])],
      cli: modes.cli,
    });
    modes.flowStarted?.(flow);
    const { port, local } = await waitImported(statefile, flow);
    if (modes.superSpeed) {
      check(/handshake: devid \d+ speed 5000 \(enum 5\)/.test(flow.stderr()), `the handshake did not say 5000: ${flow.stderr().trim()}`);
      check(vhciPorts().find((x) => x.port === port)?.hub === "ss", `port ${port} is not on vhci-hcd's SuperSpeed hub`);
      check(tryRead(`/sys/bus/usb/devices/${local}/speed`) === "5000", `the imported device's speed is ${tryRead(`/sys/bus/usb/devices/${local}/speed`)}, not 5000`);
    }
    const disk = await waitFor(`a disk on the imported device ${local}`, () => diskOf(local), 30_000);
    check(sha256(disk, 16 * MIB) === sha256(img), `imported disk ${disk} does not read back the image`);
    checkWriteLands(disk, img); // 1 MiB at 5 MiB through the disk lands in the image file
    modes.whileImported?.({ flow, port });
    const d = cli(detachFrom === "frontend" ? ["detach", "--statefile", statefile] : ["detach", "--busid", g.busid], {}, modes.cli);
    const r = await d.exited;
    check(r.code === 0, `detach exited ${r.code}: ${d.stderr().trim()}`);
    await checkCleanedUp({ port, statefile, busid: g.busid, interfaceDriver: "usb-storage", flow });
    const fr = await flow.exited;
    check(fr.code === 0, `the flow exited ${fr.code}: ${flow.stderr().trim()}`);
    check(await waitFor("the backend's disk to come back", () => diskOf(g.busid), 20_000), "no disk on the backend after detach");
    for (const t of traces) checkTrace(t);
  } finally {
    undo?.();
    g.remove();
  }
  checkGadgetsGone();
}

export const kernelStorageFrontendDetach: Scenario = {
  name: "kernel mode: gadget disk through export/import/qrexec-sim reads back, 1 MiB write lands, detach --statefile cleans up",
  run: () => storageFlow("frontend"),
};

export const kernelStorageBackendDetach: Scenario = {
  name: "kernel mode: gadget disk, detach --busid from the backend gives the device back to its driver",
  run: () => storageFlow("backend"),
};
