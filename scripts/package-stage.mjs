// The files both packages install (scripts/package.mjs: .deb, scripts/package-rpm.mjs: .rpm),
// staged into a directory tree. Layout (everything the CLI needs, nothing else):
//   /usr/bin/usbip-qrexec                  -> ../lib/usbip-qrexec/bin/usbip-qrexec.js
//   /usr/lib/usbip-qrexec/bin/usbip-qrexec.js   the launcher (imports dist/cli/main.js)
//   /usr/lib/usbip-qrexec/dist/cli/main.js      the whole CLI bundled by esbuild into one script
//   /usr/lib/usbip-qrexec/node_modules/usb      node-usb 2.x with this architecture's glibc
//                                               prebuilt libusb addon only (+ node-gyp-build)
//   /usr/lib/usbip-qrexec/node_modules/koffi    koffi (socketpair, poll, ioctl, recv) with this architecture's addon only
//   /usr/lib/usbip-qrexec/package.json          version, "type": "module"
//   /etc/qubes-rpc/qubes.USB{,Attach,Detach}, qubes.USB.config (conffile)
//   /etc/qubes/suspend-pre.d/usb-detach-all.sh, UDEV/80-qubes-usb-reset.rules
//   /usr/share/man/man8/usbip-qrexec.8.gz       from the same text as --help (scripts/manpage.mjs)
//   DOC/README.md, DOC/copyright (Debian) or LICENSE: COPYING (RPM)
// The relative paths inside /usr/lib/usbip-qrexec are the source tree's, so the bundle finds
// package.json, node-usb and koffi exactly as the unbundled CLI does.
import { execFileSync } from "node:child_process";
import { bundle, THREAD_ENTRIES } from "./bundle.mjs";
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { manPage } from "./manpage.mjs";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));

/** The package's maintainer: package.json's author ("Name <email>"). */
export function maintainer() {
  const a = pkg.author;
  const s = typeof a === "string" ? a : a && `${a.name} <${a.email}>`;
  if (!s || !/^[^<>]+ <[^<>@\s]+@[^<>\s]+>$/.test(s)) throw new Error(`package.json "author" must be "Name <email>", not ${JSON.stringify(a)}`);
  return s;
}

/** node's process.arch -> node-usb's prebuilds directory (glibc only: Debian and Fedora) */
const prebuilds = { x64: ["linux-x64", /glibc/], arm64: ["linux-arm64", /./], ia32: ["linux-ia32", /./] };

/**
 * Stage the tree under `stage`. `udevDir` is where the udev rule goes (/lib/udev/rules.d on
 * Debian, /usr/lib/udev/rules.d on Fedora); `docDir` the documentation directory.
 */
export async function stageFiles(stage, { udevDir, docDir, copyright }) {
  const p = prebuilds[process.arch];
  if (p === undefined) throw new Error(`no node-usb prebuilt addon for ${process.arch}`);
  const [prebuildDir, flavour] = p;
  if (!existsSync(path.join(root, "dist/cli/main.js"))) throw new Error("not built: run 'npm run build' first");
  const lib = path.join(stage, "usr/lib/usbip-qrexec");
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(lib, { recursive: true });
  const put = (from, to, mode) => {
    mkdirSync(path.dirname(to), { recursive: true });
    copyFileSync(path.join(root, from), to);
    if (mode !== undefined) chmodSync(to, mode);
  };
  const write = (to, text, mode = 0o644) => {
    mkdirSync(path.dirname(to), { recursive: true });
    writeFileSync(to, text);
    chmodSync(to, mode);
  };

  // the CLI: one ESM bundle; node-usb stays outside (a native addon, loaded on first use)
  await bundle("cli/main.ts", path.join(lib, "dist/cli/main.js"));
  // the relay threads' entries, where the bundle looks for them: new URL("../frontend/…",
  // import.meta.url) from dist/cli/main.js is dist/frontend/…
  for (const e of THREAD_ENTRIES) await bundle(`${e}.ts`, path.join(lib, `dist/${e}.js`));
  put("bin/usbip-qrexec.js", path.join(lib, "bin/usbip-qrexec.js"), 0o755);
  write(path.join(lib, "package.json"), JSON.stringify({ name: pkg.name, version: pkg.version, type: "module", private: true }, null, 2) + "\n");
  // node-usb: its JS, package.json and the one prebuilt addon this target loads; its loader
  const usbDir = path.join(lib, "node_modules/usb");
  cpSync(path.join(root, "node_modules/usb/dist"), path.join(usbDir, "dist"), { recursive: true, filter: (f) => !f.endsWith(".map") && !f.endsWith(".d.ts") });
  cpSync(path.join(root, "node_modules/usb/prebuilds", prebuildDir), path.join(usbDir, "prebuilds", prebuildDir), { recursive: true, filter: (f) => !f.endsWith(".node") || flavour.test(path.basename(f)) });
  put("node_modules/usb/package.json", path.join(usbDir, "package.json"));
  put("node_modules/usb/LICENSE", path.join(usbDir, "LICENSE"));
  for (const f of ["package.json", "LICENSE", "index.js", "node-gyp-build.js"]) put(`node_modules/node-gyp-build/${f}`, path.join(lib, "node_modules/node-gyp-build", f));
  // koffi (ioctl/poll: the userspace backend's usbfs URBs, the relay thread's loop): its loader and this target's prebuilt addon only
  const koffiArch = { x64: "linux_x64", arm64: "linux_arm64", ia32: "linux_ia32" }[process.arch];
  for (const f of ["package.json", "LICENSE.txt", "index.js"]) put(`node_modules/koffi/${f}`, path.join(lib, "node_modules/koffi", f));
  put(`node_modules/koffi/build/koffi/${koffiArch}/koffi.node`, path.join(lib, "node_modules/koffi/build/koffi", koffiArch, "koffi.node"));

  mkdirSync(path.join(stage, "usr/bin"), { recursive: true });
  symlinkSync("../lib/usbip-qrexec/bin/usbip-qrexec.js", path.join(stage, "usr/bin/usbip-qrexec"));
  for (const s of ["qubes.USB", "qubes.USBAttach", "qubes.USBDetach"]) put(`qubes-rpc/${s}`, path.join(stage, "etc/qubes-rpc", s), 0o755);
  put("qubes-rpc/qubes.USB.config", path.join(stage, "etc/qubes-rpc/qubes.USB.config"), 0o644);
  put("qubes/usb-detach-all.sh", path.join(stage, "etc/qubes/suspend-pre.d/usb-detach-all.sh"), 0o755);
  put("udev/80-qubes-usb-reset.rules", path.join(stage, udevDir, "80-qubes-usb-reset.rules"), 0o644);
  // the man page from the bundle's own --help texts (what the package runs is what it documents)
  const man = await manPage(path.join(lib, "dist/cli/main.js"), pkg.version);
  write(path.join(stage, "usr/share/man/man8/usbip-qrexec.8.gz"), gzipSync(Buffer.from(man), { level: 9 }));
  put("README.md", path.join(stage, docDir, "README.md"), 0o644);
  if (copyright) write(path.join(stage, docDir, "copyright"), debianCopyright());
  return { sizeKiB: Math.ceil(Number(execFileSync("du", ["-sk", stage], { encoding: "utf8" }).split("\t")[0])) };
}

/** debian/copyright in the machine-readable format (DEP-5). */
function debianCopyright() {
  const year = new Date().getUTCFullYear();
  return `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: usbip-qrexec
Upstream-Contact: ${maintainer()}

Files: *
Copyright: ${year} ${maintainer().replace(/ <.*/, "")}
License: GPL-2.0-or-later

Files: usr/lib/usbip-qrexec/node_modules/usb/*
Copyright: node-usb contributors
License: MIT
Comment: the prebuilt addon links libusb statically (LGPL-2.1-or-later), see below

Files: usr/lib/usbip-qrexec/node_modules/usb/prebuilds/*
Copyright: libusb contributors; node-usb contributors
License: LGPL-2.1-or-later

Files: usr/lib/usbip-qrexec/node_modules/koffi/*
Copyright: Niels Martignène
License: MIT

Files: usr/lib/usbip-qrexec/node_modules/node-gyp-build/*
Copyright: Mathias Buus
License: MIT

License: GPL-2.0-or-later
 This program is free software; you can redistribute it and/or modify it under the terms of
 the GNU General Public License as published by the Free Software Foundation; either version 2
 of the License, or (at your option) any later version.
 .
 On Debian systems, the full text of the GNU General Public License version 2 can be found in
 the file /usr/share/common-licenses/GPL-2.

License: LGPL-2.1-or-later
 On Debian systems, the full text of the GNU Lesser General Public License version 2.1 can be
 found in the file /usr/share/common-licenses/LGPL-2.1.

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy of this software
 and associated documentation files (the "Software"), to deal in the Software without
 restriction, including without limitation the rights to use, copy, modify, merge, publish,
 distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
 Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies or
 substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
 BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
 NONINFRINGEMENT.
`;
}

/** The package replaces Qubes' own USB proxy (same /etc/qubes-rpc files). */
export const REPLACES = "qubes-usb-proxy";
/**
 * The version of it we provide: above every release of Qubes' package (4.x for Qubes 4.x), so a
 * versioned dependency on it is satisfied and every installed version counts as older.
 */
export const REPLACES_VERSION = "5.0";

export const description = {
  summary: "USB/IP passthrough between VMs over a qrexec stream",
  body: [
    "A userspace USB/IP engine: exports a USB device over a qrexec link (kernel usbip-host,",
    "a validating relay, or its own usbfs URBs) and imports it (kernel vhci-hcd, or the validating relay",
    "that checks every URB before the kernel sees it). Drop-in qubes.USB* services that",
    "replace qubes-usb-proxy.",
  ],
};
