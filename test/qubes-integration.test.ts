/**
 * Seed parity on the host, with stand-in programs on PATH that record their arguments:
 * QubesDB keys and their order, reset-on-attach decisions, usbguard, the attach-service stderr.
 * The real export with these in the loop is shown in test/vm (scenario "seed parity").
 */
import test from "ava";
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { publishExport, qubesDbKey, remoteDomain, runnerWithEnv, unpublishExport, usbguardAllow, wantsResetOnAttach } from "../backend/qubes-integration.js";
import { hintFor, reportToAttachService } from "../frontend/attach-report.js";

/** A bin dir with recording stand-ins; each call appends "name|arg|arg|…" to the log. */
function fakeBin(programs: Record<string, { stdout?: string; code?: number }>): { env: NodeJS.ProcessEnv; log: string } {
  const dir = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-fakebin-"));
  const log = path.join(dir, "calls.log");
  for (const [name, o] of Object.entries(programs)) {
    const f = path.join(dir, name);
    writeFileSync(f, `#!/bin/sh\n{ printf '%s' "${name}"; for a in "$@"; do printf '|%s' "$a"; done; printf '\\n'; } >> ${log}\nprintf '%s' '${o.stdout ?? ""}'\nexit ${o.code ?? 0}\n`);
    chmodSync(f, 0o755);
  }
  return { env: { ...process.env, PATH: `${dir}:/usr/bin:/bin` }, log };
}
const calls = (log: string) => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : []);

test("QubesDB: keys written while exported, removed after, each change signalled — in that order", async (t) => {
  const { env, log } = fakeBin({ "qubesdb-write": {}, "qubesdb-rm": {} });
  const run = runnerWithEnv(env);
  await publishExport("1-1.4", "work", 4242, run);
  await unpublishExport("1-1.4", run);
  t.deepEqual(calls(log), [
    "qubesdb-write|/qubes-usb-devices/1-1_4/connected-to|work|/qubes-usb-devices/1-1_4/x-pid|4242|/qubes-usb-devices|",
    "qubesdb-rm|/qubes-usb-devices/1-1_4/connected-to|/qubes-usb-devices/1-1_4/x-pid",
    "qubesdb-write|/qubes-usb-devices|",
  ]);
});

test("QubesDB: busid ':' and '.' become '_'; the remote domain loses a -dm suffix", (t) => {
  t.is(qubesDbKey("2-1:1.0"), "/qubes-usb-devices/2-1_1_0");
  t.is(remoteDomain({ QREXEC_REMOTE_DOMAIN: "sys-usb-dm" }), "sys-usb");
  t.is(remoteDomain({ QREXEC_REMOTE_DOMAIN: "work" }), "work");
  t.is(remoteDomain({}), "");
});

test("QubesDB: without qubesdb-write (not a Qubes VM) nothing runs and nothing fails", async (t) => {
  const { env, log } = fakeBin({ usbguard: {} });
  const run = runnerWithEnv(env);
  await t.notThrowsAsync(publishExport("2-1", "work", 1, run));
  await t.notThrowsAsync(unpublishExport("2-1", run));
  t.deepEqual(calls(log), []);
});

test("reset on attach: udev's QUBES_USB_RESET through udevadm, or the qube-wide service flag", async (t) => {
  const db = mkdtempSync(path.join(tmpdir(), "udev-data-"));
  const yes = fakeBin({ udevadm: { stdout: "1\n" } });
  t.true(await wantsResetOnAttach("/devices/pci0000:00/usb1/1-1", runnerWithEnv(yes.env), "/nonexistent", db));
  t.deepEqual(calls(yes.log), ["udevadm|info|--query=property|--value|--property=QUBES_USB_RESET|--path=/devices/pci0000:00/usb1/1-1"]);
  const no = fakeBin({ udevadm: { stdout: "" } });
  t.false(await wantsResetOnAttach("/devices/x", runnerWithEnv(no.env), "/nonexistent", db));
  const failing = fakeBin({ udevadm: { stdout: "1", code: 2 } });
  t.false(await wantsResetOnAttach("/devices/x", runnerWithEnv(failing.env), "/nonexistent", db));
  const none = fakeBin({});
  t.false(await wantsResetOnAttach("/devices/x", runnerWithEnv(none.env), "/nonexistent", db));
  const flag = path.join(mkdtempSync(path.join(tmpdir(), "flag-")), "usb-reset-on-attach");
  writeFileSync(flag, "");
  t.true(await wantsResetOnAttach("/devices/x", runnerWithEnv(none.env), flag));
  // udev not running (no database): udevadm is not even asked
  const asked = fakeBin({ udevadm: { stdout: "1\n" } });
  t.false(await wantsResetOnAttach("/devices/x", runnerWithEnv(asked.env), "/nonexistent", path.join(db, "absent")));
  t.deepEqual(calls(asked.log), []);
});

test("a program that is not on PATH is not spawned: the runner answers undefined", async (t) => {
  const { env } = fakeBin({});
  t.is(await runnerWithEnv({ ...env, PATH: env.PATH!.split(":")[0] })("sh", ["-c", "exit 0"]), undefined);
  t.deepEqual(await runnerWithEnv(env)("sh", ["-c", "printf hi; exit 3"]), { code: 3, stdout: "hi" });
});

test("usbguard: allow-device by port; a failing usbguard is ignored", async (t) => {
  const ok = fakeBin({ usbguard: {} });
  await usbguardAllow("2-1", runnerWithEnv(ok.env));
  t.deepEqual(calls(ok.log), ['usbguard|allow-device|via-port "2-1"']);
  const bad = fakeBin({ usbguard: { code: 1 } });
  await t.notThrowsAsync(usbguardAllow("2-1", runnerWithEnv(bad.env)));
});

test("attach errors reach the qubes.USBAttach caller's stderr with the domain and a hint", async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), "attach-"));
  const errFile = path.join(dir, "stderr");
  // stand-in for the qubes.USBAttach shell: its fd 2 is errFile
  const svc = spawn("sh", ["-c", `exec 2>>${errFile}; sleep 5`], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 200));
  const ok = reportToAttachService("USBIP_ERR_NO_HANDSHAKE", "no device info received", { SERVICE_ATTACH_PID: String(svc.pid), USBIP_QREXEC_REMOTE_DOMAIN: "sys-usb" });
  svc.kill();
  t.true(ok);
  const line = readFileSync(errFile, "utf8");
  t.regex(line, /^usbip-qrexec: attaching a device from sys-usb to .+ failed: no device info received \(hint: the backend sent nothing/);
  t.false(reportToAttachService("X", "y", {}), "no caller: nothing to do");
  t.regex(hintFor("USBIP_ERR_NO_FREE_PORT"), /detach a device first/);
});
