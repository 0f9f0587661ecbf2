/**
 * The packages are complete: `npm run package`'s .deb and `npm run package:rpm`'s RPM (build/,
 * made by scripts/run-tests.mjs before the VM suite) are unpacked into a throwaway directory
 * (dpkg-deb -x; rpm2cpio | cpio, as on a Fedora template without installing), and the storage
 * scenario runs with the unpacked files only — export, import, qrexec-sim, detach, koffi, and
 * the orphan guards' cleanup commands all come from the package, not from the source tree.
 */
import { readdirSync, rmSync, mkdirSync } from "node:fs";
import path from "node:path";
import type { Scenario } from "./scenarios.js";
import { storageFlow } from "./scenario-kernel-storage.js";
import { check, sh } from "./lib.js";
import { ourProcesses, repo } from "./flows.js";

function builtPackage(pattern: RegExp, what: string): string {
  const dir = path.join(repo, "build");
  let found: string[] = [];
  try {
    found = readdirSync(dir).filter((f) => pattern.test(f));
  } catch {
    /* none */
  }
  check(found.length === 1, `expected one ${what} in ${dir}, found ${found.length}`);
  return path.join(dir, found[0]!);
}

async function packagedStorage(unpack: (dir: string) => void): Promise<void> {
  const unpacked = "/run/tmp/pkg";
  rmSync(unpacked, { recursive: true, force: true });
  mkdirSync(unpacked, { recursive: true });
  unpack(unpacked);
  const cli = path.join(unpacked, "usr/bin/usbip-qrexec");
  try {
    await storageFlow("frontend", {
      importMode: "relay",
      exportMode: "kernel",
      cli,
      whileImported() {
        // the running flow is the package's: its guards would run its own CLI, nothing runs from the tree
        const ours = ourProcesses();
        check(ours.some((p) => p.includes("usbip-qrexec-guard") && p.includes(`${unpacked}/usr/`)), `no orphan guard from the package: ${ours.join(" | ")}`);
        const fromTree = ours.filter((p) => p.includes(`${repo}/`));
        check(fromTree.length === 0, `processes from the source tree: ${fromTree.join(" | ")}`);
        // the package's own `port` sees the import it made
        const port = sh(cli, ["port"]);
        check(/\brelay\b/.test(port) && /\/run\//.test(port), `the package's 'port' does not list the import: ${port}`);
      },
    });
  } finally {
    rmSync(unpacked, { recursive: true, force: true });
  }
}

export const packageScenario: Scenario = {
  name: "the .deb unpacked with dpkg-deb -x: the storage scenario (frontend relay, kernel export) with the unpacked files only reads back, write lands, detach cleans up",
  run: () => packagedStorage((dir) => sh("dpkg-deb", ["-x", builtPackage(/^usbip-qrexec_.*\.deb$/, "usbip-qrexec .deb (npm run package)"), dir])),
};

export const rpmPackageScenario: Scenario = {
  name: "the RPM unpacked with rpm2cpio | cpio: the storage scenario (frontend relay, kernel export) with the unpacked files only reads back, write lands, detach cleans up",
  run: () => packagedStorage((dir) => sh("sh", ["-c", `cd ${dir} && rpm2cpio ${builtPackage(/^usbip-qrexec-.*\.rpm$/, "usbip-qrexec RPM (npm run package:rpm)")} | cpio -idm --quiet`])),
};
