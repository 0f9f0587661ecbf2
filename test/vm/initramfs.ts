/**
 * Builds the VM's initramfs from the machine's own Debian packages: busybox-static for /init
 * and the 9p/virtio modules of the kernel booted (dependency order from modules.dep via
 * `modprobe --show-depends`, which leaves out what is built in: virtio is, from 6.12). 6.12 and
 * later ship modules as .ko.xz, which busybox's insmod cannot load: they are decompressed into
 * the initramfs. Nothing prebuilt is committed; the result is cached by kernel version and
 * busybox size under the cache dir. A fetched kernel's module tree is a third 9p share, mounted
 * over /lib/modules of the guest's root (the host's, read-only).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync, copyFileSync, chmodSync, rmSync, symlinkSync } from "node:fs";
import path from "node:path";
import { createHash } from "node:crypto";

import type { Kernel } from "./kernels.js";

const BOOT_MODULES = ["virtio_pci", "9pnet_virtio", "9p"];

/** The insmod order for the modules the init needs to mount the 9p shares. */
function moduleOrder(k: Kernel): string[] {
  const order: string[] = [];
  for (const m of BOOT_MODULES) {
    const out = execFileSync("modprobe", ["--show-depends", "-d", k.root, "-S", k.version, m], { encoding: "utf8" });
    for (const line of out.split("\n")) {
      const f = /^insmod (\S+)/.exec(line.trim())?.[1];
      if (f !== undefined && !order.includes(f)) order.push(f);
    }
  }
  return order;
}

/** A module's file name in the initramfs: plain ELF (foo.ko.xz → foo.ko). */
const plainName = (m: string) => path.basename(m).replace(/\.(xz|zst|gz)$/, "");

/** The guest's /init: mount the host root read-only, a writable results share, then run the guest suite. */
function initScript(mods: string[], guestCmd: string, ownModules: boolean): string {
  return `#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /newroot
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
${mods.map((m) => `$B insmod /modules/${plainName(m)}`).join("\n")}
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=524288 hostroot /newroot || { echo "VM: cannot mount the host root"; $B poweroff -f; }
$B mount -t proc proc /newroot/proc
$B mount -t sysfs sys /newroot/sys
$B mount -t devtmpfs dev /newroot/dev
${ownModules ? `$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=524288 modules /newroot/lib/modules || { echo "VM: cannot mount the kernel's modules"; $B poweroff -f; }
` : ""}$B mount -t tmpfs -o mode=0755 run /newroot/run
$B mkdir -p /newroot/run/results /newroot/run/tmp /newroot/run/lock
$B mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 results /newroot/run/results || echo "VM: cannot mount the results share"
$B mount -t debugfs debugfs /newroot/sys/kernel/debug 2>/dev/null
$B mkdir -p /newroot/dev/pts /newroot/dev/shm
$B mount -t devpts devpts /newroot/dev/pts
$B mount -t tmpfs shm /newroot/dev/shm
$B ip link set lo up 2>/dev/null || $B ifconfig lo 127.0.0.1 up # loopback for the TCP scenarios
echo "VM: booted, running the guest suite"
$B chroot /newroot /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/run/tmp TMPDIR=/run/tmp USBIP_VM_GUEST=1 ${guestCmd}
echo "VM: guest suite exited with $?"
# a kernel a fuzzing run hurt can block the power-off for good (device_shutdown waits on a USB
# device lock a stuck task holds): in 30 s, sysrq b resets the machine without it (qemu runs
# with -no-reboot, so a reset ends it)
( $B sleep 30; echo b > /proc/sysrq-trigger ) &
$B sync
$B poweroff -f
`;
}

/** Build (or reuse) the initramfs; returns its path. */
export function buildInitramfs(k: Kernel, cacheDir: string, guestCmd: string): string {
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
  if (busybox === undefined) throw new Error("busybox not found (apt-get install busybox-static)");
  const mods = moduleOrder(k);
  const init = initScript(mods, guestCmd, k.root !== "/");
  const key = createHash("sha256").update(`${k.version}\n${statSync(busybox).size}\n${mods.join(",")}\n${init}`).digest("hex").slice(0, 16);
  const out = path.join(cacheDir, `initramfs-${key}.cpio`);
  if (existsSync(out)) return out;
  const tree = path.join(cacheDir, "initramfs-tree");
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(path.join(tree, "bin"), { recursive: true });
  mkdirSync(path.join(tree, "modules"), { recursive: true });
  copyFileSync(busybox, path.join(tree, "bin/busybox"));
  chmodSync(path.join(tree, "bin/busybox"), 0o755);
  symlinkSync("busybox", path.join(tree, "bin/sh"));
  for (const m of mods) {
    const to = path.join(tree, "modules", plainName(m));
    if (m.endsWith(".xz")) writeFileSync(to, execFileSync("xz", ["-dc", m], { maxBuffer: 64 << 20 }));
    else if (m.endsWith(".zst")) writeFileSync(to, execFileSync("zstd", ["-dc", m], { maxBuffer: 64 << 20 }));
    else copyFileSync(m, to);
  }
  writeFileSync(path.join(tree, "init"), init, { mode: 0o755 });
  // newc cpio, built with busybox's cpio from a file list
  const files = execFileSync("find", [".", "-mindepth", "1"], { cwd: tree, encoding: "utf8" });
  const cpio = execFileSync(busybox, ["cpio", "-o", "-H", "newc"], { cwd: tree, input: files, maxBuffer: 256 << 20 });
  writeFileSync(out, cpio);
  return out;
}

export function readText(p: string): string {
  return existsSync(p) ? readFileSync(p, "utf8") : "";
}
