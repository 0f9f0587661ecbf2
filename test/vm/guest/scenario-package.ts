/**
 * The Debian package is complete: `npm run package`'s .deb (build/, made by scripts/run-tests.mjs
 * before the VM suite) is unpacked with dpkg-deb -x into a throwaway directory, and the storage
 * scenario runs with the unpacked CLI only — export, import, qrexec-sim, detach, the python
 * helpers and the orphan guards all come from the package, not from the source tree.
 */
import { readdirSync, rmSync } from "node:fs";
import path from "node:path";
import type { Scenario } from "./scenarios.js";
import { storageFlow } from "./scenario-kernel-storage.js";
import { check, sh } from "./lib.js";
import { ourProcesses, repo } from "./flows.js";

async function packagedStorage(): Promise<void> {
  const dir = path.join(repo, "build");
  let debs: string[] = [];
  try {
    debs = readdirSync(dir).filter((f) => /^usbip-qrexec_.*\.deb$/.test(f));
  } catch {
    /* none */
  }
  check(debs.length === 1, `expected one usbip-qrexec .deb in ${dir} (npm run package), found ${debs.length}`);
  const unpacked = "/run/tmp/pkg";
  rmSync(unpacked, { recursive: true, force: true });
  sh("dpkg-deb", ["-x", path.join(dir, debs[0]!), unpacked]);
  const cli = path.join(unpacked, "usr/bin/usbip-qrexec");
  try {
    await storageFlow("frontend", {
      importMode: "relay",
      exportMode: "kernel",
      cli,
      whileImported() {
        // the running flow is the package's: its guards run its own helper, nothing runs from the tree
        const ours = ourProcesses();
        check(ours.some((p) => p.includes(`${unpacked}/usr/lib/usbip-qrexec/kernel-glue/helpers/usbfs.py guard`)), `no orphan guard from the package: ${ours.join(" | ")}`);
        const fromTree = ours.filter((p) => p.includes(`${repo}/`));
        check(fromTree.length === 0, `processes from the source tree: ${fromTree.join(" | ")}`);
      },
    });
  } finally {
    rmSync(unpacked, { recursive: true, force: true });
  }
}

export const packageScenario: Scenario = {
  name: "the .deb unpacked with dpkg-deb -x: the storage scenario (frontend relay, kernel export) with the unpacked files only reads back, write lands, detach cleans up",
  run: packagedStorage,
};
