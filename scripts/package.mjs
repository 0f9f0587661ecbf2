#!/usr/bin/env node
// `npm run package`: build the Debian package build/usbip-qrexec_VERSION_ARCH.deb with dpkg-deb,
// from the tree scripts/package-stage.mjs stages (the same files as the RPM). It replaces Qubes'
// qubes-usb-proxy, which installs the same /etc/qubes-rpc services: Conflicts + Replaces make
// dpkg remove it when ours is installed, Provides keeps what depends on it installable.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { description, maintainer, pkg, REPLACES, REPLACES_VERSION, root, stageFiles } from "./package-stage.mjs";

const arch = execFileSync("dpkg", ["--print-architecture"], { encoding: "utf8" }).trim();
const out = process.env.PACKAGE_OUT ?? path.join(root, "build");
const stage = path.join(out, "root");
try {
  const { sizeKiB } = await stageFiles(stage, { udevDir: "lib/udev/rules.d", docDir: "usr/share/doc/usbip-qrexec", copyright: true });
  mkdirSync(path.join(stage, "DEBIAN"));
  writeFileSync(path.join(stage, "DEBIAN/control"), [
    `Package: usbip-qrexec`,
    `Version: ${pkg.version}`,
    `Architecture: ${arch}`,
    `Maintainer: ${maintainer()}`,
    `Installed-Size: ${sizeKiB}`,
    // libudev1 and libstdc++6: what node-usb's prebuilt addon links (libusb is inside it)
    `Depends: nodejs (>= 20), libudev1, libstdc++6`,
    `Recommends: usbip`,
    `Suggests: tshark`,
    `Conflicts: ${REPLACES}`,
    `Replaces: ${REPLACES}`,
    `Provides: ${REPLACES} (= ${REPLACES_VERSION})`,
    `Section: admin`,
    `Priority: optional`,
    `Description: ${description.summary}`,
    ...description.body.map((l) => ` ${l}`),
    ``,
  ].join("\n"));
  writeFileSync(path.join(stage, "DEBIAN/conffiles"), "/etc/qubes-rpc/qubes.USB.config\n");
  const deb = path.join(out, `usbip-qrexec_${pkg.version}_${arch}.deb`);
  rmSync(deb, { force: true });
  execFileSync("dpkg-deb", ["--root-owner-group", "-Zgzip", "--build", stage, deb], { stdio: ["ignore", "ignore", "inherit"] });
  console.log(deb);
} catch (e) {
  console.error(`package: ${e.message.split("\n")[0]}`);
  process.exitCode = 1;
} finally {
  rmSync(stage, { recursive: true, force: true });
}
