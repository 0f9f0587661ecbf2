#!/usr/bin/env node
// `npm run package`: build the Debian package build/usbip-qrexec_VERSION_ARCH.deb with dpkg-deb.
// Layout (everything the CLI needs, nothing else):
//   /usr/bin/usbip-qrexec                  -> ../lib/usbip-qrexec/bin/usbip-qrexec.js
//   /usr/lib/usbip-qrexec/bin/usbip-qrexec.js   the launcher (imports dist/cli/main.js)
//   /usr/lib/usbip-qrexec/dist/cli/main.js      the whole CLI bundled by esbuild into one script
//   /usr/lib/usbip-qrexec/kernel-glue/helpers/  the python3 helpers (ioctl, poll, fd handover)
//   /usr/lib/usbip-qrexec/node_modules/usb      node-usb 2.x with this architecture's prebuilt
//                                               libusb addon (+ node-gyp-build, its loader)
//   /usr/lib/usbip-qrexec/package.json          version, "type": "module"
//   /etc/qubes-rpc/qubes.USB{,Attach,Detach}, qubes.USB.config (conffile)
//   /etc/qubes/suspend-pre.d/usb-detach-all.sh, /lib/udev/rules.d/80-qubes-usb-reset.rules
//   /usr/share/doc/usbip-qrexec/README.md
// The relative paths inside /usr/lib/usbip-qrexec are the source tree's, so the bundle finds
// package.json, the helpers and node-usb exactly as the unbundled CLI does.
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
const arch = execFileSync("dpkg", ["--print-architecture"], { encoding: "utf8" }).trim();
const prebuild = { amd64: "linux-x64", arm64: "linux-arm64", i386: "linux-ia32", armhf: "linux-arm" }[arch];
if (prebuild === undefined) {
  console.error(`package: no node-usb prebuilt addon for Debian architecture ${arch}`);
  process.exit(1);
}
const out = process.env.PACKAGE_OUT ?? path.join(root, "build");
const stage = path.join(out, "root");
const lib = path.join(stage, "usr/lib/usbip-qrexec");
rmSync(stage, { recursive: true, force: true });
mkdirSync(lib, { recursive: true });

const put = (from, to, mode) => {
  mkdirSync(path.dirname(to), { recursive: true });
  copyFileSync(path.join(root, from), to);
  if (mode !== undefined) chmodSync(to, mode);
};

// the CLI: one ESM bundle; node-usb stays outside (a native addon, loaded on first use)
const { build } = await import("esbuild");
await build({ entryPoints: [path.join(root, "cli/main.ts")], bundle: true, platform: "node", format: "esm", target: "node20", external: ["usb"], banner: { js: "import { createRequire as __usbipQrexecCreateRequire } from \"node:module\"; const require = __usbipQrexecCreateRequire(import.meta.url);" }, logLevel: "warning", outfile: path.join(lib, "dist/cli/main.js") });
put("bin/usbip-qrexec.js", path.join(lib, "bin/usbip-qrexec.js"), 0o755);
writeFileSync(path.join(lib, "package.json"), JSON.stringify({ name: pkg.name, version: pkg.version, type: "module", private: true }, null, 2) + "\n");
for (const f of ["usbfs.py", "handover.py"]) {
  try {
    put(`kernel-glue/helpers/${f}`, path.join(lib, "kernel-glue/helpers", f), 0o755);
  } catch (e) {
    if (e.code !== "ENOENT") throw e;
  }
}
// node-usb: its JS, package.json and this architecture's prebuilt addon; its loader
const usbDir = path.join(lib, "node_modules/usb");
cpSync(path.join(root, "node_modules/usb/dist"), path.join(usbDir, "dist"), { recursive: true, filter: (p) => !p.endsWith(".map") && !p.endsWith(".d.ts") });
cpSync(path.join(root, "node_modules/usb/prebuilds", prebuild), path.join(usbDir, "prebuilds", prebuild), { recursive: true });
put("node_modules/usb/package.json", path.join(usbDir, "package.json"));
put("node_modules/usb/LICENSE", path.join(usbDir, "LICENSE"));
cpSync(path.join(root, "node_modules/node-gyp-build"), path.join(lib, "node_modules/node-gyp-build"), { recursive: true });

mkdirSync(path.join(stage, "usr/bin"), { recursive: true });
symlinkSync("../lib/usbip-qrexec/bin/usbip-qrexec.js", path.join(stage, "usr/bin/usbip-qrexec"));
for (const s of ["qubes.USB", "qubes.USBAttach", "qubes.USBDetach"]) put(`qubes-rpc/${s}`, path.join(stage, "etc/qubes-rpc", s), 0o755);
put("qubes-rpc/qubes.USB.config", path.join(stage, "etc/qubes-rpc/qubes.USB.config"), 0o644);
put("qubes/usb-detach-all.sh", path.join(stage, "etc/qubes/suspend-pre.d/usb-detach-all.sh"), 0o755);
put("udev/80-qubes-usb-reset.rules", path.join(stage, "lib/udev/rules.d/80-qubes-usb-reset.rules"), 0o644);
put("README.md", path.join(stage, "usr/share/doc/usbip-qrexec/README.md"), 0o644);

const sizeKiB = Math.ceil(Number(execFileSync("du", ["-sk", stage], { encoding: "utf8" }).split("\t")[0]));
mkdirSync(path.join(stage, "DEBIAN"));
writeFileSync(path.join(stage, "DEBIAN/control"), [
  `Package: usbip-qrexec`,
  `Version: ${pkg.version}`,
  `Architecture: ${arch}`,
  `Maintainer: usbip-qrexec developers <usbip-qrexec@localhost>`,
  `Installed-Size: ${sizeKiB}`,
  `Depends: nodejs (>= 20), python3`,
  `Recommends: usbip`,
  `Suggests: tshark`,
  `Section: admin`,
  `Priority: optional`,
  `Description: USB/IP passthrough between VMs over a qrexec stream`,
  ` A userspace USB/IP engine: exports a USB device over a qrexec link (kernel usbip-host,`,
  ` a validating relay, or libusb) and imports it (kernel vhci-hcd, or the validating relay`,
  ` that checks every URB before the kernel sees it). Drop-in qubes.USB* services.`,
  ``,
].join("\n"));
writeFileSync(path.join(stage, "DEBIAN/conffiles"), "/etc/qubes-rpc/qubes.USB.config\n");
const deb = path.join(out, `usbip-qrexec_${pkg.version}_${arch}.deb`);
rmSync(deb, { force: true });
execFileSync("dpkg-deb", ["--root-owner-group", "-Zgzip", "--build", stage, deb], { stdio: ["ignore", "ignore", "inherit"] });
rmSync(stage, { recursive: true, force: true });
console.log(deb);
