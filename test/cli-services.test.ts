/**
 * The service commands on the host, without a kernel: argument errors, refusals before anything
 * is touched, `list` on a fake sysfs, `qrexec-sim` link semantics, and the qubes-rpc scripts'
 * stdin formats and statefile paths (with a recording stand-in for the CLI). The kernel
 * behaviour itself is proven in test/vm.
 */
import test from "ava";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, chmodSync, existsSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { isOneLineError, runCli } from "./helpers/cli.js";
import { repoRoot } from "./helpers/fixtures.js";
import { addDevice, fakeRoot } from "./helpers/fake-sysfs.js";

const tmp = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-svc-"));

test("usage errors of export/import/detach/qrexec-sim: one line, exit 64", async (t) => {
  const cases = [
    ["export"],
    ["export", "1-1", "2-1"],
    ["export", "1-1", "--mode", "turbo"],
    ["import"],
    ["import", "s", "--mode", "userspace"],
    ["detach"],
    ["detach", "--statefile", "a", "--busid", "1-1"],
    ["detach", "--busid", "not a busid"],
    ["qrexec-sim", "--", "true"],
    ["qrexec-sim", "--link", "tcp", "--", "true", "--", "true"],
    ["list", "--xml"],
  ];
  for (const args of cases) {
    const r = await runCli(args);
    t.is(r.code, 64, args.join(" "));
    t.true(isOneLineError(r.stderr), `${args.join(" ")}: ${r.stderr}`);
  }
});

test("every command has a --help that names its arguments", async (t) => {
  for (const [cmd, word] of [["export", "DEVICE"], ["import", "STATEFILE"], ["detach", "--busid"], ["list", "--json"], ["qrexec-sim", "LOCAL_CMD"], ["decode", "--from-client"], ["probe", "SERVICE_CMD"], ["demo", "--size"], ["export", "--virtual"], ["serve", "--tcp"], ["connect", "--busid"], ["bench", "--json"]] as const) {
    const r = await runCli([cmd, "--help"]);
    t.is(r.code, 0, cmd);
    t.true(r.stdout.includes(word), cmd);
  }
});

test("export refuses a bad device spec, an interface, a hub and a missing device before touching anything", async (t) => {
  const root = fakeRoot();
  addDevice(root, { busid: "1-1", busnum: 1, devnum: 2, bDeviceClass: "09" });
  const env = { USBIP_QREXEC_SYSFS: root };
  const expect: Array<[string, RegExp]> = [
    ["sda", /invalid device "sda"/],
    ["2-1:1.0", /is an interface/],
    ["1-1", /is a hub/],
    ["4-2", /no such USB device: 4-2/],
    ["0x1234.0x5678", /no USB device with id 1234:5678/],
  ];
  for (const [dev, re] of expect) {
    const r = await runCli(["export", dev], { env });
    t.is(r.code, 1, dev);
    t.regex(r.stderr, re);
    t.true(isOneLineError(r.stderr));
  }
});

test("export and import in kernel mode refuse a non-socket fd 0 with a hint", async (t) => {
  const root = fakeRoot();
  addDevice(root, { busid: "2-1", busnum: 2, devnum: 3 });
  // (libuv's 'pipe' stdio would be a socketpair: use a file)
  const devnull = openSync("/dev/null", "r");
  const e = spawnSync(process.execPath, [path.join(repoRoot, "bin/usbip-qrexec.js"), "export", "2-1"], { env: { ...process.env, USBIP_QREXEC_SYSFS: root }, stdio: [devnull, "pipe", "pipe"], encoding: "utf8" });
  t.is(e.status, 1);
  t.regex(e.stderr, /fd 0 is not a socket.*qrexec-sim --link socket/);
  writeFileSync(path.join(tmp, "hs"), "65538 480\n");
  const i = spawnSync(process.execPath, [path.join(repoRoot, "bin/usbip-qrexec.js"), "import", path.join(tmp, "st")], { stdio: [openSync(path.join(tmp, "hs"), "r"), "pipe", "pipe"], encoding: "utf8" });
  t.is(i.status, 1);
  t.regex(i.stderr, /fd 0 is not a socket/);
  t.false(existsSync(path.join(tmp, "st")));
});

test("list on a fake sysfs: exportable devices only, text and JSON", async (t) => {
  const root = fakeRoot();
  addDevice(root, { busid: "2-1", busnum: 2, devnum: 5, driver: "usb", product: "Disk", interfaces: [{ cls: "08", driver: "usb-storage" }] });
  addDevice(root, { busid: "1-1", busnum: 1, devnum: 2, bDeviceClass: "09" });
  addDevice(root, { busid: "3-1", busnum: 3, devnum: 2, onVhci: true });
  addDevice(root, { busid: "2-2", busnum: 2, devnum: 6, driver: "usbip-host", usbipStatus: 2, idVendor: "0525", idProduct: "a4a0" });
  const env = { USBIP_QREXEC_SYSFS: root };
  const j = await runCli(["list", "--json"], { env });
  t.is(j.code, 0);
  const devs = JSON.parse(j.stdout) as Array<{ busid: string; state: string; devid: number; interfaces: unknown[] }>;
  t.deepEqual(devs.map((d) => [d.busid, d.state]), [["2-1", "-"], ["2-2", "exported"]]);
  t.is(devs[0]!.devid, (2 << 16) | 5);
  const txt = await runCli(["list"], { env });
  t.regex(txt.stdout, /^2-1\s+1d6b:0104\s+480\s+usb\s+-\s+if 08\s+Disk/m);
  t.regex(txt.stdout, /^2-2\s+0525:a4a0 .*exported/m);
  const empty = await runCli(["list"], { env: { USBIP_QREXEC_SYSFS: fakeRoot() } });
  t.is(empty.stdout, "no exportable USB devices\n");
});

test("qrexec-sim: bytes flow both ways; fd 0 carries output only after SIGUSR1; EOF reaches the other side", async (t) => {
  const r = await runCli(["qrexec-sim", "--", "sh", "-c", "echo ping; read x; echo \"local got $x\" >&2", "--", "sh", "-c", "read x; echo \"service got $x\" >&2; kill -USR1 $QREXEC_AGENT_PID; echo pong >&0; cat >/dev/null; echo 'service saw EOF' >&2"]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /service got ping/);
  t.regex(r.stderr, /local got pong/);
  t.regex(r.stderr, /service saw EOF/);
});

test("qrexec-sim: the service's non-zero exit code wins, else the local one; --link pipes has pipes", async (t) => {
  t.is((await runCli(["qrexec-sim", "--", "sh", "-c", "exit 3", "--", "sh", "-c", "exit 0"])).code, 3);
  t.is((await runCli(["qrexec-sim", "--", "sh", "-c", "exit 3", "--", "sh", "-c", "exit 7"])).code, 7);
  const p = await runCli(["qrexec-sim", "--link", "pipes", "--", "sh", "-c", "[ -p /dev/stdin ] && echo pipe >&2", "--", "sh", "-c", "[ -S /dev/stdin ] || echo notsocket >&2"]);
  t.regex(p.stderr, /pipe/);
  t.regex(p.stderr, /notsocket/);
  const s = await runCli(["qrexec-sim", "--", "sh", "-c", "[ -S /dev/stdin ] && echo socket >&2", "--", "true"]);
  t.regex(s.stderr, /socket/);
  const missing = await runCli(["qrexec-sim", "--", "/nonexistent/cmd", "--", "true"]);
  t.not(missing.code, 0);
});

test("qrexec-sim --link direct: one socket per side carries both directions with no SIGUSR1; EOF when the other exits", async (t) => {
  const r = await runCli(["qrexec-sim", "--link", "direct", "--", "sh", "-c", "[ -S /dev/stdin ] && [ -S /dev/stdout ] && echo ping && read x && echo \"local got $x\" >&2", "--", "sh", "-c", "read x; echo \"service got $x\" >&2; echo pong; cat >/dev/null; echo 'service saw EOF' >&2; exit 5"]);
  t.is(r.code, 5, r.stderr);
  t.regex(r.stderr, /service got ping/);
  t.regex(r.stderr, /local got pong/);
  t.regex(r.stderr, /service saw EOF/);
});

/** A stand-in CLI that records its arguments and environment. */
function recorder(): { bin: string; log: string } {
  const log = path.join(tmp, `calls-${Math.random().toString(36).slice(2)}.log`);
  const bin = path.join(tmp, `fake-cli-${Math.random().toString(36).slice(2)}`);
  writeFileSync(bin, `#!/bin/sh\necho "$@" >> ${log}\necho "SAP=$SERVICE_ATTACH_PID" >> ${log}\n`);
  chmodSync(bin, 0o755);
  return { bin, log };
}

test("qubes-rpc scripts: the seed's stdin formats, service argument and statefile path", (t) => {
  const rpc = (name: string) => path.join(repoRoot, "qubes-rpc", name);
  const state = mkdtempSync(path.join(tmp, "state-"));
  const cfg = path.join(tmp, "cfg");
  writeFileSync(cfg, `STATE_DIR=${state}\n`);
  // qubes.USB+2-1 → export --mode kernel -- 2-1 (as root; sudo -E otherwise)
  const a = recorder();
  const usb = spawnSync(rpc("qubes.USB"), ["2-1"], { env: { ...process.env, USBIP_QREXEC: a.bin, USBIP_QREXEC_CONFIG: cfg }, encoding: "utf8" });
  t.is(usb.status, 0, usb.stderr);
  t.regex(readFileSync(a.log, "utf8"), /^export --mode kernel -- 2-1$/m);
  const noarg = spawnSync(rpc("qubes.USB"), [], { encoding: "utf8" });
  t.is(noarg.status, 1);
  t.regex(noarg.stderr, /service argument/);
  // qubes.USBDetach "2-1" (backend form) and "sys-usb 2-1" (frontend form)
  const b = recorder();
  const env = { ...process.env, USBIP_QREXEC: b.bin, USBIP_QREXEC_CONFIG: cfg };
  t.is(spawnSync(rpc("qubes.USBDetach"), [], { env, input: "2-1\n" }).status, 0);
  writeFileSync(path.join(state, "usb-import-sys-usb-2-1.state"), "0\n");
  t.is(spawnSync(rpc("qubes.USBDetach"), [], { env, input: "sys-usb 2-1\n" }).status, 0);
  const calls = readFileSync(b.log, "utf8");
  t.regex(calls, /^detach --busid 2-1$/m);
  t.regex(calls, new RegExp(`^detach --statefile ${state}/usb-import-sys-usb-2-1\\.state$`, "m"));
  const notAttached = spawnSync(rpc("qubes.USBDetach"), [], { env, input: "work 3-1\n", encoding: "utf8" });
  t.is(notAttached.status, 1);
  t.regex(notAttached.stderr, /Device 3-1 from domain work not attached!/);
  // qubes.USBAttach "sys-usb 2-1" → qrexec-client-vm sys-usb qubes.USB+2-1 <cli> import --mode kernel <statefile>
  const c = recorder();
  const fakeQcv = path.join(tmp, "qrexec-client-vm");
  writeFileSync(fakeQcv, `#!/bin/sh\necho "qrexec-client-vm $@" >> ${c.log}\nexit 5\n`);
  chmodSync(fakeQcv, 0o755);
  const att = spawnSync(rpc("qubes.USBAttach"), [], { env: { ...process.env, PATH: `${tmp}:${process.env.PATH}`, USBIP_QREXEC: c.bin, USBIP_QREXEC_CONFIG: cfg }, input: "sys-usb 2-1\n", encoding: "utf8" });
  t.is(att.status, 5, "the remote error code is reported");
  t.regex(readFileSync(c.log, "utf8"), new RegExp(`^qrexec-client-vm sys-usb qubes\\.USB\\+2-1 ${c.bin} import --mode kernel ${state}/usb-import-sys-usb-2-1\\.state$`, "m"));
  const bad = spawnSync(rpc("qubes.USBAttach"), [], { env, input: "sys-usb 2-1;reboot\n", encoding: "utf8" });
  t.is(bad.status, 1);
});
