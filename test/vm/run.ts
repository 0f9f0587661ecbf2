/**
 * The real-kernel VM suite, host side: boots a Debian kernel under qemu (software emulation:
 * nested KVM hangs here) with the host's root shared read-only over 9p and a writable share for
 * results, runs the guest suite (test/vm/guest/main.ts) inside, and reports each scenario as a
 * TAP line naming the kernel: `ok 3 - vm[6.12] relay: …`.
 *   node dist/test/vm/run.js [SCENARIO...]   (or VM_SCENARIOS=a,b): scenarios whose name has one
 *   VM_KERNEL=6.1|6.12|newest|VERSION        the kernel (test/vm/kernels.ts; default 6.1)
 *   VM_SET=core                              the core set only
 *
 * Without qemu or the kernel the suite is skipped with a loud message, except in CI
 * (CI=true), where that is a failure: the VM suite must run there.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildInitramfs } from "./initramfs.js";
import { KernelUnavailable, resolveKernel, type Kernel } from "./kernels.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const requested = process.argv.slice(2).concat(process.env.VM_SCENARIOS ? process.env.VM_SCENARIOS.split(",") : []);
const timeoutMs = Number(process.env.VM_TIMEOUT_S ?? 4500) * 1000;
const memMiB = Number(process.env.VM_MEM_MIB ?? 2048);

function which(cmd: string): string | undefined {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

const kernelSpec = process.env.VM_KERNEL ?? "6.1";
let tag = `vm[${kernelSpec}]`;

function unavailable(why: string): never {
  const banner = "!".repeat(78);
  if (process.env.CI) {
    console.log(`not ok 1 - ${tag} VM suite cannot run in CI: ${why}`);
    console.log("1..1");
    process.exit(1);
  }
  process.stderr.write(`\n${banner}\n!! VM SUITE SKIPPED (${tag}): ${why}\n!! The kernel-facing code (vhci-hcd, usbip-host, sysfs) was NOT tested against this kernel.\n!! Install: apt-get install qemu-system-x86 linux-image-amd64 busybox-static usbip python3 tshark alsa-utils v4l-utils\n${banner}\n\n`);
  console.log(`ok 1 - ${tag} VM suite # SKIP ${why}`);
  console.log("1..1");
  process.exit(0);
}

const qemu = which("qemu-system-x86_64");
if (qemu === undefined) unavailable("qemu-system-x86_64 not found");
if (!existsSync(path.join(repo, "dist/test/vm/guest/main.js"))) unavailable("project not built (npm run build)");
const cacheDir = process.env.VM_CACHE ?? path.join(tmpdir(), "usbip-qrexec-vm-cache");
mkdirSync(cacheDir, { recursive: true });
let kernel: Kernel;
try {
  kernel = resolveKernel(kernelSpec, cacheDir);
} catch (e) {
  if (e instanceof KernelUnavailable) unavailable(`kernel ${kernelSpec}: ${e.message}`);
  throw e;
}
tag = `vm[${kernel.label}]`;
process.stderr.write(`[vm] ${tag}: Linux ${kernel.version}${kernel.root === "/" ? "" : ` (fetched, ${kernel.root})`}${process.env.VM_SET ? `, set ${process.env.VM_SET}` : ""}\n`);
const results = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-vm-"));
// BENCH_* variables (bench knobs), VM_CYCLES (the attach/detach cycle count) and VM_REPEAT (run
// the selected scenarios that many times, to chase a flaky one) pass into the guest
const benchEnv = Object.entries(process.env).filter(([k, v]) => (k.startsWith("BENCH_") || k === "VM_CYCLES" || k === "VM_REPEAT" || k === "VM_SET") && /^[\w ,./=:+-]*$/.test(v ?? "")).map(([k, v]) => `${k}='${v}' `).join("");
const guestCmd = `${benchEnv}/usr/bin/node ${path.join(repo, "dist/test/vm/guest/main.js")} --results /run/results ${requested.map((s) => `'${s.replace(/'/g, "'\\''")}'`).join(" ")}`; // sh quoting: a ' in a name is '\''
let initrd: string;
try {
  initrd = buildInitramfs(kernel, cacheDir, guestCmd);
} catch (e) {
  console.log(`not ok 1 - ${tag} VM suite: cannot build the initramfs: ${(e as Error).message}`);
  console.log("1..1");
  process.exit(1);
}

const args = [
  "-accel", "tcg,thread=multi",
  "-smp", "2",
  "-m", String(memMiB),
  "-nographic", "-no-reboot", "-nodefaults",
  "-serial", "stdio",
  "-kernel", kernel.vmlinuz,
  "-initrd", initrd,
  "-append", "console=ttyS0 panic=-1 loglevel=4 quiet",
  "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
  "-virtfs", `local,path=${results},mount_tag=results,security_model=none,multidevs=remap`,
  // an isochronous OUT device: qemu's USB audio on an emulated xHCI (no driver until a scenario
  // loads xhci_pci); what it receives goes through qemu's mixer into results/usb-audio.wav
  "-device", "qemu-xhci,id=xhci",
  "-device", "usb-audio,bus=xhci.0,audiodev=snd0",
  "-audiodev", `wav,id=snd0,path=${path.join(results, "usb-audio.wav")},out.frequency=48000,out.channels=2,out.format=s16`,
  // a fetched kernel's modules, over the guest's /lib/modules (the host root has only its own)
  ...(kernel.root === "/" ? [] : ["-virtfs", `local,path=${kernel.modulesRoot},mount_tag=modules,security_model=none,readonly=on,multidevs=remap`]),
];
const started = Date.now();
const consoleLog = path.join(results, "console.log");
/**
 * One boot of the guest. A boot that dies before the guest suite starts (VM-NOTES: multi-threaded
 * TCG's code-patching race panics a kernel about once in fifteen boots, before anything of
 * ours ran) is booted again, once, and the output says so; a failure after the suite started is
 * a result and is never retried.
 */
function boot(attempt: number): void {
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
    if (attempt === 1 && !text.includes("VM: booted, running the guest suite") && !existsSync(path.join(results, "results.tap"))) {
      writeFileSync(path.join(results, "console-boot1.log"), text);
      const why = /Kernel panic[^\n]*|Oops[^\n]*/.exec(text)?.[0] ?? `qemu ${signal ?? `exit ${code}`}`;
      console.log(`# ${tag} the first boot died before the guest suite started (${why.trim()}; the emulator, see VM-NOTES): booting again`);
      boot(2);
      return;
    }
    report(text, code, signal);
  });
}
boot(1);

function report(text: string, code: number | null, signal: NodeJS.Signals | null): void {
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
    console.log(l.replace(/^((?:not )?ok \d+ - )vm: /, `$1${tag} `));
  }
  const finished = lines.some((l) => l.startsWith("# guest suite finished"));
  if (!finished) {
    n++;
    failed++;
    console.log(`not ok ${n} - ${tag} VM run did not finish (qemu ${signal ?? `exit ${code}`}); console tail:`);
    for (const l of text.split("\n").slice(-40)) console.log(`#   ${l}`);
  } else if (failed > 0) {
    console.log("# console tail:");
    for (const l of text.split("\n").slice(-25)) console.log(`#   ${l}`);
  }
  console.log(`# ${tag} VM suite: Linux ${kernel.version}, ${Math.round((Date.now() - started) / 1000)} s wall time (boot + scenarios); logs in ${results}`);
  console.log(`1..${n}`);
  if (failed === 0 && !process.env.VM_KEEP) rmSync(results, { recursive: true, force: true });
  process.exitCode = failed > 0 ? 1 : 0;
}
