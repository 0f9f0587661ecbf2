/**
 * The real-kernel VM suite, host side: boots Debian's kernel under qemu (software emulation:
 * nested KVM hangs here) with the host's root shared read-only over 9p and a writable share for
 * results, runs the guest suite (test/vm/guest/main.ts) inside, and reports each scenario as a
 * TAP line. Usage: node dist/test/vm/run.js [SCENARIO...]  (or VM_SCENARIOS=a,b)
 *
 * Without qemu or Debian's kernel the suite is skipped with a loud message, except in CI
 * (CI=true), where that is a failure: the VM suite must run there.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildInitramfs, findKernel } from "./initramfs.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const requested = process.argv.slice(2).concat(process.env.VM_SCENARIOS ? process.env.VM_SCENARIOS.split(",") : []);
const timeoutMs = Number(process.env.VM_TIMEOUT_S ?? 4500) * 1000;
const memMiB = Number(process.env.VM_MEM_MIB ?? 2048);

function which(cmd: string): string | undefined {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function unavailable(why: string): never {
  const banner = "!".repeat(78);
  if (process.env.CI) {
    console.log(`not ok 1 - VM suite cannot run in CI: ${why}`);
    console.log("1..1");
    process.exit(1);
  }
  process.stderr.write(`\n${banner}\n!! VM SUITE SKIPPED: ${why}\n!! The kernel-facing code (vhci-hcd, usbip-host, sysfs) was NOT tested against a real kernel.\n!! Install: apt-get install qemu-system-x86 linux-image-amd64 busybox-static usbip python3\n${banner}\n\n`);
  console.log(`ok 1 - VM suite # SKIP ${why}`);
  console.log("1..1");
  process.exit(0);
}

const qemu = which("qemu-system-x86_64");
if (qemu === undefined) unavailable("qemu-system-x86_64 not found");
const kernel = findKernel();
if (kernel === undefined) unavailable("no Debian kernel in /boot with modules (linux-image-amd64)");
if (!existsSync(path.join(repo, "dist/test/vm/guest/main.js"))) unavailable("project not built (npm run build)");

const cacheDir = path.join(tmpdir(), "usbip-qrexec-vm-cache");
mkdirSync(cacheDir, { recursive: true });
const results = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-vm-"));
// BENCH_* variables (bench knobs), VM_CYCLES (the attach/detach cycle count) and VM_REPEAT (run
// the selected scenarios that many times, to chase a flaky one) pass into the guest
const benchEnv = Object.entries(process.env).filter(([k, v]) => (k.startsWith("BENCH_") || k === "VM_CYCLES" || k === "VM_REPEAT") && /^[\w ,.=:-]*$/.test(v ?? "")).map(([k, v]) => `${k}='${v}' `).join("");
const guestCmd = `${benchEnv}/usr/bin/node ${path.join(repo, "dist/test/vm/guest/main.js")} --results /run/results ${requested.map((s) => `'${s}'`).join(" ")}`;
let initrd: string;
try {
  initrd = buildInitramfs(kernel!, cacheDir, guestCmd);
} catch (e) {
  console.log(`not ok 1 - VM suite: cannot build the initramfs: ${(e as Error).message}`);
  console.log("1..1");
  process.exit(1);
}

const args = [
  "-accel", "tcg,thread=multi",
  "-smp", "2",
  "-m", String(memMiB),
  "-nographic", "-no-reboot", "-nodefaults",
  "-serial", "stdio",
  "-kernel", kernel!.vmlinuz,
  "-initrd", initrd,
  "-append", "console=ttyS0 panic=-1 loglevel=4 quiet",
  "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
  "-virtfs", `local,path=${results},mount_tag=results,security_model=none,multidevs=remap`,
];
const started = Date.now();
const consoleLog = path.join(results, "console.log");
const child = spawn(qemu!, args, { stdio: ["ignore", "pipe", "pipe"] });
const out: Buffer[] = [];
child.stdout.on("data", (b: Buffer) => {
  out.push(b);
  if (process.env.VM_VERBOSE) process.stderr.write(b);
});
child.stderr.on("data", (b: Buffer) => out.push(b));
const timer = setTimeout(() => {
  out.push(Buffer.from(`\n[host] VM timed out after ${timeoutMs / 1000} s, killing qemu\n`));
  child.kill("SIGKILL");
}, timeoutMs);

child.on("close", (code, signal) => {
  clearTimeout(timer);
  const text = Buffer.concat(out).toString("utf8");
  writeFileSync(consoleLog, text);
  const tapFile = path.join(results, "results.tap");
  const tap = existsSync(tapFile) ? readFileSync(tapFile, "utf8") : "";
  const lines = tap.split("\n").filter((l) => l.length > 0);
  let n = 0;
  let failed = 0;
  for (const l of lines) {
    if (/^(ok|not ok)\b/.test(l)) {
      n++;
      if (l.startsWith("not ok")) failed++;
    }
    console.log(l);
  }
  const finished = lines.some((l) => l.startsWith("# guest suite finished"));
  if (!finished) {
    n++;
    failed++;
    console.log(`not ok ${n} - VM run did not finish (qemu ${signal ?? `exit ${code}`}); console tail:`);
    for (const l of text.split("\n").slice(-40)) console.log(`#   ${l}`);
  } else if (failed > 0) {
    console.log("# console tail:");
    for (const l of text.split("\n").slice(-25)) console.log(`#   ${l}`);
  }
  console.log(`# VM suite: ${Math.round((Date.now() - started) / 1000)} s wall time (boot + scenarios); logs in ${results}`);
  console.log(`1..${n}`);
  if (failed === 0 && !process.env.VM_KEEP) rmSync(results, { recursive: true, force: true });
  process.exitCode = failed > 0 ? 1 : 0;
});
