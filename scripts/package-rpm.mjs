#!/usr/bin/env node
// `npm run package:rpm`: build the RPM for Fedora templates, build/usbip-qrexec-VERSION-1.ARCH.rpm,
// with rpmbuild (Debian's `rpm` package has it) from the tree scripts/package-stage.mjs stages:
// the same files and (no) scripts as the .deb. It replaces qubes-usb-proxy (Conflicts,
// Obsoletes: dnf swaps it out; Provides keeps what depends on it installable).
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { description, maintainer, pkg, REPLACES, REPLACES_VERSION, root, stageFiles } from "./package-stage.mjs";

const rpmArch = { x64: "x86_64", arm64: "aarch64", ia32: "i686" }[process.arch];
const lib64 = process.arch === "ia32" ? "" : "(64bit)";
const out = process.env.PACKAGE_OUT ?? path.join(root, "build");
const top = path.join(out, "rpmbuild");
const stage = path.join(top, "stage");
try {
  try {
    execFileSync("rpmbuild", ["--version"], { stdio: "ignore" });
  } catch {
    throw new Error("rpmbuild not found (Debian: apt-get install rpm; Fedora: dnf install rpm-build)");
  }
  await stageFiles(stage, { udevDir: "usr/lib/udev/rules.d", docDir: "usr/share/doc/usbip-qrexec", copyright: false });
  mkdirSync(path.join(stage, "usr/share/licenses/usbip-qrexec"), { recursive: true });
  copyFileSync(path.join(root, "COPYING"), path.join(stage, "usr/share/licenses/usbip-qrexec/COPYING"));
  const spec = [
    `Name: usbip-qrexec`,
    `Version: ${pkg.version}`,
    `Release: 1`,
    `Summary: ${description.summary}`,
    `License: GPL-2.0-or-later`,
    `Packager: ${maintainer()}`,
    `BuildArch: ${rpmArch}`,
    // what the package runs: Node 20+, and what node-usb's and koffi's prebuilt
    // addon links (libusb is inside it); nothing generated from the bundled files
    `AutoReqProv: no`,
    `Requires: nodejs >= 20`,
    `Requires: libudev.so.1()${lib64}`,
    `Requires: libstdc++.so.6()${lib64}`,
    `Recommends: usbip`,
    `Conflicts: ${REPLACES}`,
    `Obsoletes: ${REPLACES} < ${REPLACES_VERSION}`,
    `Provides: ${REPLACES} = ${REPLACES_VERSION}`,
    // the staged files go in as they are: no strip, no debuginfo, no shebang or bytecode rewriting
    `%global debug_package %{nil}`,
    `%global __os_install_post %{nil}`,
    `%global __brp_mangle_shebangs %{nil}`,
    ``,
    `%description`,
    ...description.body,
    ``,
    `%install`,
    `cp -a ${stage}/. %{buildroot}/`,
    ``,
    `%files`,
    `/usr/bin/usbip-qrexec`,
    `/usr/lib/usbip-qrexec`,
    `/etc/qubes-rpc/qubes.USB`,
    `/etc/qubes-rpc/qubes.USBAttach`,
    `/etc/qubes-rpc/qubes.USBDetach`,
    `%config(noreplace) /etc/qubes-rpc/qubes.USB.config`,
    `/etc/qubes/suspend-pre.d/usb-detach-all.sh`,
    `/usr/lib/udev/rules.d/80-qubes-usb-reset.rules`,
    `/usr/share/man/man8/usbip-qrexec.8.gz`,
    `%dir /usr/share/doc/usbip-qrexec`,
    `%doc /usr/share/doc/usbip-qrexec/README.md`,
    `%dir /usr/share/licenses/usbip-qrexec`,
    `%license /usr/share/licenses/usbip-qrexec/COPYING`,
    ``,
  ].join("\n");
  writeFileSync(path.join(top, "usbip-qrexec.spec"), spec);
  execFileSync("rpmbuild", ["-bb", "--quiet", "--define", `_topdir ${top}`, "--define", "_build_id_links none", "--target", `${rpmArch}-linux`, path.join(top, "usbip-qrexec.spec")], { stdio: ["ignore", "ignore", "inherit"] });
  const dir = path.join(top, "RPMS", rpmArch);
  const [rpm] = readdirSync(dir).filter((f) => f.endsWith(".rpm"));
  if (rpm === undefined) throw new Error(`rpmbuild made no package in ${dir}`);
  const dest = path.join(out, rpm);
  rmSync(dest, { force: true });
  renameSync(path.join(dir, rpm), dest);
  console.log(dest);
} catch (e) {
  console.error(`package:rpm: ${e.message.split("\n")[0]}`);
  process.exitCode = 1;
} finally {
  rmSync(top, { recursive: true, force: true });
}
