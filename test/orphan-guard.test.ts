/**
 * The orphan guard (kernel-glue/orphan-guard.ts, a /bin/sh script): a process that dies without
 * disarming it (SIGKILL, a crash) has its cleanup command run; one that disarms, or is stopped
 * by a signal sent to its whole process group, has nothing run. Plus the CLI side:
 * `detach --orphan-of` cleans a dead importer's statefile quietly and refuses a live pid.
 */
import test from "ava";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const tmp = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-guard-"));
const CLI = path.resolve(here, "../../bin/usbip-qrexec.js");

/** A child that starts a guard writing `marker`, then disarms and exits, or waits to be killed. */
function guarded(marker: string, mode: "disarm" | "wait"): ReturnType<typeof spawn> {
  const src = `
    const { startOrphanGuard } = await import(${JSON.stringify(path.resolve(here, "../kernel-glue/orphan-guard.js"))});
    const g = startOrphanGuard(["sh", "-c", "echo cleaned > ${marker}"]);
    process.stdout.write("ready\\n");
    if (${JSON.stringify(mode)} === "disarm") { g.disarm(); } else { setInterval(() => {}, 1000); }
  `;
  return spawn(process.execPath, ["--input-type=module", "-e", src], { stdio: ["ignore", "pipe", "inherit"] });
}

const ready = (c: ReturnType<typeof spawn>) => new Promise<void>((r) => c.stdout!.once("data", () => r()));
const exited = (c: ReturnType<typeof spawn>) => new Promise<void>((r) => c.once("close", () => r()));

async function eventually(f: () => boolean, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (f()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return f();
}

test("a guarded process killed with SIGKILL has its cleanup run", async (t) => {
  const marker = path.join(tmp, "killed");
  const c = guarded(marker, "wait");
  await ready(c);
  t.false(existsSync(marker), "the cleanup ran while the process was alive");
  c.kill("SIGKILL");
  await exited(c);
  t.true(await eventually(() => existsSync(marker)), "the guard did not run the cleanup");
  t.is(readFileSync(marker, "utf8").trim(), "cleaned");
});

test("a process that disarms its guard and exits has nothing run", async (t) => {
  const marker = path.join(tmp, "disarmed");
  const c = guarded(marker, "disarm");
  await exited(c);
  // the guard runs the cleanup within milliseconds of EOF; give it ample time to (wrongly) do so
  await new Promise((r) => setTimeout(r, 1500));
  t.false(existsSync(marker));
});

test("the guard is in its own session: SIGINT to the guarded process's group does not reach it", async (t) => {
  const marker = path.join(tmp, "group");
  const c = spawn(process.execPath, ["--input-type=module", "-e", `
    const { startOrphanGuard } = await import(${JSON.stringify(path.resolve(here, "../kernel-glue/orphan-guard.js"))});
    startOrphanGuard(["sh", "-c", "echo cleaned > ${marker}"]);
    process.stdout.write("ready\\n");
    setInterval(() => {}, 1000);
  `], { stdio: ["ignore", "pipe", "inherit"], detached: true });
  await ready(c);
  process.kill(-c.pid!, "SIGINT"); // the whole group: the guarded process dies of it, unguarded
  await exited(c);
  t.true(await eventually(() => existsSync(marker)), "the guard died with its process group instead of cleaning up");
});

function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    c.stderr!.on("data", (b: Buffer) => (stderr += b));
    c.on("close", (code) => resolve({ code, stderr }));
  });
}

test("detach --statefile --orphan-of: a dead importer that never attached leaves nothing to do, quietly", async (t) => {
  const dead = spawn("true");
  await exited(dead);
  const r = await run(["detach", "--statefile", path.join(tmp, "never-written"), "--orphan-of", String(dead.pid)]);
  t.is(r.code, 0);
  t.is(r.stderr, "");
});

test("detach --orphan-of refuses a process that is still running, and bad pids", async (t) => {
  const sf = path.join(tmp, "live-state");
  writeFileSync(sf, "3\n");
  const r = await run(["detach", "--statefile", sf, "--orphan-of", String(process.pid)]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^usbip-qrexec: detach: process \d+ is still running/);
  t.true(existsSync(sf), "the statefile of a live import was removed");
  const bad = await run(["detach", "--statefile", sf, "--orphan-of", "12x"]);
  t.is(bad.code, 64);
  t.regex(bad.stderr, /--orphan-of takes a process id/);
});

/**
 * A fake sysfs with 2-1 (a disk interface without driver, a HID one with) and a run dir; `detach`
 * run against them with /dev moved (USBIP_QREXEC_DEV) to a tree where 2-1's usbfs node is a
 * regular file: USBDEVFS_RESET on it is refused (ENOTTY), so an attempted reset shows as that
 * failure, naming the node. (The reset itself is proven against the real kernel in the VM suite.)
 */
async function orphanedExportFixture() {
  const { fakeRoot, addDevice, put } = await import("./helpers/fake-sysfs.js");
  const root = fakeRoot();
  put(root, "bus/usb/drivers_probe", "");
  addDevice(root, { busid: "2-1", busnum: 2, devnum: 5, driver: "usb", interfaces: [{ cls: "08" }, { cls: "03", driver: "usbhid" }] });
  const run = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-run-"));
  const dev = path.join(run, "dev");
  mkdirSync(path.join(dev, "bus/usb/002"), { recursive: true });
  writeFileSync(path.join(dev, "bus/usb/002/005"), "");
  const detach = (args: string[]) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [CLI, "detach", ...args], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, USBIP_QREXEC_SYSFS: root, USBIP_QREXEC_RUNDIR: run, USBIP_QREXEC_DEV: dev } });
      let stderr = "";
      c.stderr!.on("data", (b: Buffer) => (stderr += b));
      c.on("close", (code) => resolve({ code, stderr }));
    });
  const dead = spawn("true");
  await exited(dead);
  return { root, run, dev, detach, dead: dead.pid! };
}

test("detach --busid --orphan-of: after a killed userspace export, the device's reset is attempted on its usbfs node, driverless interfaces are reprobed, the stale pid file goes", async (t) => {
  const { root, run, dev, detach, dead } = await orphanedExportFixture();
  writeFileSync(path.join(run, "export-2-1.pid"), `${dead}\n`);
  const r = await detach(["--busid", "2-1", "--orphan-of", String(dead)]);
  t.is(readFileSync(path.join(root, "bus/usb/drivers_probe"), "utf8"), "2-1:1.0", "only the interface without a driver is reprobed");
  t.false(existsSync(path.join(run, "export-2-1.pid")));
  // the node is a regular file here: the reset (it may have been cut mid-transfer) is refused, and said
  t.is(r.code, 1, r.stderr);
  t.is(r.stderr, `usbip-qrexec: detach: 2-1: reset: reset of ${dev}/bus/usb/002/005 failed: USBDEVFS_RESET refused\n`);
});

test("detach --busid --orphan-of: a device exported again since (a live pid in its pid file) is left alone", async (t) => {
  const { root, run, detach, dead } = await orphanedExportFixture();
  const live = spawn("sleep", ["30"]);
  t.teardown(() => live.kill("SIGKILL"));
  writeFileSync(path.join(run, "export-2-1.pid"), `${live.pid}\n`);
  const r = await detach(["--busid", "2-1", "--orphan-of", String(dead)]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, new RegExp(`2-1 left alone: it is exported again \\(by process ${live.pid}\\)`));
  t.notRegex(r.stderr, /reset/, "no reset");
  t.is(readFileSync(path.join(root, "bus/usb/drivers_probe"), "utf8"), "", "no reprobe");
  t.is(readFileSync(path.join(run, "export-2-1.pid"), "utf8").trim(), String(live.pid), "the new export's pid file stays");
});
