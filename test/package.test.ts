/**
 * `npm run package` (scripts/package.mjs): the .deb holds everything the CLI needs. Unpacked
 * with dpkg-deb -x into a throwaway directory and run from there only: --version, the demo
 * (virtual disk through qrexec-sim and the validating relay, checksummed), node-usb's native
 * addon loading from the package's own node_modules, the qubes-rpc services in place.
 * (The VM suite runs the storage scenario against the real kernel with the unpacked files.)
 */
import test from "ava";
import { execFileSync, spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const version = (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }).version;

test("the .deb unpacks into a working CLI: version, control fields, services, node-usb, demo", (t) => {
  const out = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-pkg-"));
  const built = execFileSync(process.execPath, [path.join(root, "scripts/package.mjs")], { env: { ...process.env, PACKAGE_OUT: out }, encoding: "utf8", timeout: 120_000 }).trim();
  t.true(built.endsWith(".deb") && existsSync(built), `no .deb: ${built}`);
  t.deepEqual(readdirSync(out), [path.basename(built)], "the staging tree was left behind");
  const fields = execFileSync("dpkg-deb", ["-f", built], { encoding: "utf8" });
  t.regex(fields, /^Package: usbip-qrexec$/m);
  t.regex(fields, new RegExp(`^Version: ${version.replace(/\./g, "\\.")}$`, "m"));
  t.regex(fields, /^Depends: nodejs \(>= 20\), python3$/m);
  const dir = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-unpacked-"));
  execFileSync("dpkg-deb", ["-x", built, dir]);
  for (const s of ["qubes.USB", "qubes.USBAttach", "qubes.USBDetach"]) accessSync(path.join(dir, "etc/qubes-rpc", s), constants.X_OK);
  t.true(existsSync(path.join(dir, "etc/qubes-rpc/qubes.USB.config")));
  accessSync(path.join(dir, "usr/lib/usbip-qrexec/kernel-glue/helpers/usbfs.py"), constants.X_OK);
  const bin = path.join(dir, "usr/bin/usbip-qrexec");
  // nothing from the source tree: the bundle must not reach back into it
  const env = { ...process.env, NODE_PATH: "" };
  const cwd = dir;
  t.is(execFileSync(bin, ["--version"], { encoding: "utf8", env, cwd }).trim(), version);
  t.regex(execFileSync(bin, ["export", "--help"], { encoding: "utf8", env, cwd }), /^usage: usbip-qrexec export DEVICE/);
  const usb = spawnSync(process.execPath, ["--input-type=module", "-e", `import { createRequire } from "node:module"; const r = createRequire(${JSON.stringify(path.join(dir, "usr/lib/usbip-qrexec/dist/cli/main.js"))}); const m = r("usb"); console.log(r.resolve("usb")); console.log(Array.isArray(m.usb.getDeviceList()));`], { encoding: "utf8", env, cwd });
  t.is(usb.status, 0, usb.stderr);
  t.true(usb.stdout.startsWith(path.join(dir, "usr/lib/usbip-qrexec/node_modules/usb/")), usb.stdout);
  t.regex(usb.stdout, /^true$/m, "node-usb's addon did not load from the package");
  const demo = spawnSync(bin, ["demo"], { encoding: "utf8", env, cwd, timeout: 90_000 });
  t.is(demo.status, 0, demo.stdout + demo.stderr);
  t.regex(demo.stdout, /sha256 matches the image/);
  t.regex(demo.stdout, /^demo: ok$/m);
});
