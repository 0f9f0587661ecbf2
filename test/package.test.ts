/**
 * The packages (scripts/package.mjs: .deb, scripts/package-rpm.mjs: .rpm) hold everything the
 * CLI needs and nothing else, and replace Qubes' qubes-usb-proxy cleanly:
 *  - the .deb unpacked with dpkg-deb -x runs from there only: --version, every command its
 *    --help lists (and bench is not one of them), node-usb's addon from its own node_modules,
 *    the demo; control fields, the copyright file, the man page, one prebuilt addon;
 *  - installed with dpkg into a throwaway root holding a stand-in qubes-usb-proxy (same files)
 *    and a package that depends on it: ours replaces it, takes its files, satisfies the
 *    dependent, and removing ours leaves no file and nothing broken;
 *  - the RPM: rpm -qpi / -qpl / -qpR / provides / conflicts / obsoletes, the same files as the
 *    .deb, unpacked with rpm2cpio | cpio it runs.
 * (The VM suite runs the storage scenario against the real kernel from each unpacked package.)
 */
import test from "ava";
import { execFileSync, spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const version = (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }).version;
const have = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const tmp = (p: string) => mkdtempSync(path.join(tmpdir(), `usbip-qrexec-${p}-`));

function build(script: string): string {
  const out = tmp("pkg");
  const built = execFileSync(process.execPath, [path.join(root, "scripts", script)], { env: { ...process.env, PACKAGE_OUT: out }, encoding: "utf8", timeout: 180_000 }).trim();
  if (!existsSync(built) || readdirSync(out).length !== 1) throw new Error(`${script}: expected one package in ${out}, got ${readdirSync(out).join(", ")} (${built})`);
  return built;
}

/** Every file below dir, relative, sorted. */
function files(dir: string, rel = ""): string[] {
  return readdirSync(path.join(dir, rel), { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? files(dir, path.join(rel, e.name)) : [path.join(rel, e.name)]))
    .sort();
}

/** Checks both packages' unpacked trees share: the CLI runs from there alone and says only what it ships. */
function checkUnpacked(t: import("ava").ExecutionContext, dir: string): void {
  for (const s of ["qubes.USB", "qubes.USBAttach", "qubes.USBDetach"]) accessSync(path.join(dir, "etc/qubes-rpc", s), constants.X_OK);
  t.true(existsSync(path.join(dir, "etc/qubes-rpc/qubes.USB.config")));
  accessSync(path.join(dir, "etc/qubes/suspend-pre.d/usb-detach-all.sh"), constants.X_OK);
  t.false(existsSync(path.join(dir, "usr/lib/usbip-qrexec/kernel-glue/helpers")), "no helpers: the libc calls go through koffi");
  // one prebuilt addon: this architecture's, glibc (Debian and Fedora), not musl, not others
  const addons = files(path.join(dir, "usr/lib/usbip-qrexec/node_modules/usb")).filter((f) => f.endsWith(".node"));
  t.deepEqual(addons, [process.arch === "x64" ? "prebuilds/linux-x64/node.napi.glibc.node" : addons[0]!], `addons: ${addons.join(", ")}`);
  const bin = path.join(dir, "usr/bin/usbip-qrexec");
  const env = { ...process.env, NODE_PATH: "" };
  t.is(execFileSync(bin, ["--version"], { encoding: "utf8", env, cwd: dir }).trim(), version);
  const usage = execFileSync(bin, ["--help"], { encoding: "utf8", env, cwd: dir });
  const listed = [...(/^Commands:\n([\s\S]*?)\n\n/m.exec(usage)?.[1] ?? "").matchAll(/^ {2}(\S+) /gm)].map((m) => m[1]!);
  t.true(listed.includes("export") && listed.includes("import") && listed.includes("port"), usage);
  t.false(listed.includes("bench"), "the package's --help lists bench, which it does not ship");
  for (const c of listed) {
    const r = spawnSync(bin, [c, "--help"], { encoding: "utf8", env, cwd: dir });
    t.is(r.status, 0, `${c} --help: ${r.stderr}`);
    t.regex(r.stdout, new RegExp(`^usage: usbip-qrexec ${c}`), c);
  }
  // the man page is the --help text: every listed command's usage line is in it
  const man = gunzipSync(readFileSync(path.join(dir, "usr/share/man/man8/usbip-qrexec.8.gz"))).toString();
  t.regex(man, /^\.TH USBIP-QREXEC 8 /);
  for (const c of listed) t.true(man.includes(`.SS ${c}\n`) && man.includes(`usage: usbip-qrexec ${c}`), `man page lacks ${c}`);
  t.false(man.includes(".SS bench"));
  const usb = spawnSync(process.execPath, ["--input-type=module", "-e", `import { createRequire } from "node:module"; const r = createRequire(${JSON.stringify(path.join(dir, "usr/lib/usbip-qrexec/dist/cli/main.js"))}); const m = r("usb"); console.log(r.resolve("usb")); console.log(Array.isArray(m.usb.getDeviceList()));`], { encoding: "utf8", env, cwd: dir });
  t.is(usb.status, 0, usb.stderr);
  t.true(usb.stdout.startsWith(path.join(dir, "usr/lib/usbip-qrexec/node_modules/usb/")), usb.stdout);
  t.regex(usb.stdout, /^true$/m, "node-usb's addon did not load from the package");
  // the relay threads' entries, bundled where the CLI's bundle looks for them: each loads with
  // every import resolved (outside a worker it stops at its own check, after loading)
  for (const entry of ["frontend/import-relay-thread.js", "backend/export-relay-thread.js"]) {
    const r = spawnSync(process.execPath, [path.join(dir, "usr/lib/usbip-qrexec/dist", entry)], { encoding: "utf8", env, cwd: dir });
    t.regex(r.stderr, /serveRelayThread runs in a worker thread/, `${entry}: ${r.stderr}`);
  }
  // koffi (usbfs iso transfers): its one addon, loaded from the package
  const koffiAddons = files(path.join(dir, "usr/lib/usbip-qrexec/node_modules/koffi")).filter((f) => f.endsWith(".node"));
  t.is(koffiAddons.length, 1, `koffi addons: ${koffiAddons.join(", ")}`);
  const ffi = spawnSync(process.execPath, ["--input-type=module", "-e", `import { createRequire } from "node:module"; const r = createRequire(${JSON.stringify(path.join(dir, "usr/lib/usbip-qrexec/dist/cli/main.js"))}); const k = r("koffi"); console.log(r.resolve("koffi")); console.log(typeof k.load("libc.so.6").func("int getpid(void)")());`], { encoding: "utf8", env, cwd: dir });
  t.is(ffi.status, 0, ffi.stderr);
  t.true(ffi.stdout.startsWith(path.join(dir, "usr/lib/usbip-qrexec/node_modules/koffi/")), ffi.stdout);
  t.regex(ffi.stdout, /^number$/m, "koffi's addon did not load from the package");
}

let deb: string;
test.before(() => {
  deb = build("package.mjs");
});

test("the .deb: control fields, copyright, man page, one addon; unpacked it runs every command it lists and the demo", (t) => {
  const fields = execFileSync("dpkg-deb", ["-f", deb], { encoding: "utf8" });
  t.regex(fields, /^Package: usbip-qrexec$/m);
  t.regex(fields, new RegExp(`^Version: ${version.replace(/\./g, "\\.")}$`, "m"));
  t.regex(fields, /^Depends: nodejs \(>= 20\), libudev1, libstdc\+\+6$/m);
  t.regex(fields, /^Conflicts: qubes-usb-proxy$/m);
  t.regex(fields, /^Replaces: qubes-usb-proxy$/m);
  t.regex(fields, /^Provides: qubes-usb-proxy \(= 5\.0\)$/m);
  const maint = /^Maintainer: (.*)$/m.exec(fields)?.[1] ?? "";
  t.regex(maint, /^[^<>]+ <[^@<>\s]+@[^<>\s]+>$/);
  t.false(/localhost/.test(maint), maint);
  const dir = tmp("unpacked");
  execFileSync("dpkg-deb", ["-x", deb, dir]);
  const copyright = readFileSync(path.join(dir, "usr/share/doc/usbip-qrexec/copyright"), "utf8");
  t.regex(copyright, /^Format: https:\/\/www\.debian\.org\/doc\/packaging-manuals\/copyright-format\/1\.0\/$/m);
  t.regex(copyright, /^Files: \*\nCopyright: .+\nLicense: GPL-2\.0-or-later$/m);
  t.regex(copyright, /\/usr\/share\/common-licenses\/GPL-2/);
  checkUnpacked(t, dir);
  const demo = spawnSync(path.join(dir, "usr/bin/usbip-qrexec"), ["demo"], { encoding: "utf8", env: { ...process.env, NODE_PATH: "" }, cwd: dir, timeout: 90_000 });
  t.is(demo.status, 0, demo.stdout + demo.stderr);
  t.regex(demo.stdout, /sha256 matches the image/);
  t.regex(demo.stdout, /^demo: ok$/m);
});

/** A stand-in package: NAME VERSION, control lines, files (each holds its package's name). */
function standIn(dir: string, name: string, ver: string, control: string[], paths: string[], conffiles = false): string {
  const stage = path.join(dir, name);
  mkdirSync(path.join(stage, "DEBIAN"), { recursive: true });
  writeFileSync(path.join(stage, "DEBIAN/control"), [`Package: ${name}`, `Version: ${ver}`, "Architecture: all", "Maintainer: stand-in <stand-in@example.org>", ...control, "Description: stand-in for the test", ""].join("\n"));
  for (const p of paths) {
    mkdirSync(path.join(stage, path.dirname(p)), { recursive: true });
    writeFileSync(path.join(stage, p), `${name} ${p}\n`);
  }
  if (conffiles) writeFileSync(path.join(stage, "DEBIAN/conffiles"), paths.filter((p) => p.startsWith("/etc/")).join("\n") + "\n");
  const out = path.join(dir, `${name}.deb`);
  execFileSync("dpkg-deb", ["--root-owner-group", "-b", stage, out], { stdio: "ignore" });
  return out;
}

test("the .deb replaces qubes-usb-proxy in a throwaway dpkg root: its files are ours, its dependents stay satisfied, removing ours leaves nothing", (t) => {
  const work = tmp("dpkg");
  const R = path.join(work, "root");
  for (const d of ["var/lib/dpkg/info", "var/lib/dpkg/updates"]) mkdirSync(path.join(R, d), { recursive: true });
  for (const f of ["var/lib/dpkg/status", "var/lib/dpkg/available"]) writeFileSync(path.join(R, f), "");
  const dpkg = (...args: string[]) => spawnSync("dpkg", [`--root=${R}`, "--force-not-root", "--force-script-chrootless", ...args], { encoding: "utf8" });
  const proxyFiles = ["/etc/qubes-rpc/qubes.USB", "/etc/qubes-rpc/qubes.USBAttach", "/etc/qubes-rpc/qubes.USBDetach", "/etc/qubes/suspend-pre.d/usb-detach-all.sh", "/usr/lib/qubes/usb-import"];
  const base = [
    standIn(work, "nodejs", "20.19.2", [], ["/usr/share/doc/nodejs/stand-in"]),
    standIn(work, "libudev1", "257.9", [], ["/usr/share/doc/libudev1/stand-in"]),
    standIn(work, "libstdc++6", "14.2.0", [], ["/usr/share/doc/libstdc++6/stand-in"]),
    // Qubes' own package: the same services, as conffiles (debhelper makes every /etc file one)
    standIn(work, "qubes-usb-proxy", "4.3.1", [], proxyFiles, true),
    standIn(work, "qubes-vm-recommended", "4.3.0", ["Depends: qubes-usb-proxy (>= 4.2)"], ["/usr/share/doc/qubes-vm-recommended/stand-in"]),
  ];
  let r = dpkg("-i", ...base);
  t.is(r.status, 0, r.stdout + r.stderr);
  t.is(readFileSync(path.join(R, "etc/qubes-rpc/qubes.USB"), "utf8"), "qubes-usb-proxy /etc/qubes-rpc/qubes.USB\n");

  r = dpkg("-i", deb);
  t.is(r.status, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /Removing qubes-usb-proxy/);
  const status = (pkg: string) => dpkg("-s", pkg).stdout.match(/^Status: (.*)$/m)?.[1];
  t.is(status("usbip-qrexec"), "install ok installed");
  t.not(status("qubes-usb-proxy"), "install ok installed");
  t.is(status("qubes-vm-recommended"), "install ok installed", "the dependent of qubes-usb-proxy was broken");
  for (const f of ["/etc/qubes-rpc/qubes.USB", "/etc/qubes-rpc/qubes.USBAttach", "/etc/qubes-rpc/qubes.USBDetach", "/etc/qubes/suspend-pre.d/usb-detach-all.sh"]) {
    t.regex(dpkg("-S", f).stdout, /^usbip-qrexec: /m, `${f} is not ours`);
    t.false(readFileSync(path.join(R, f), "utf8").startsWith("qubes-usb-proxy"), `${f} still holds the old package's content`);
  }
  t.false(existsSync(path.join(R, "usr/lib/qubes/usb-import")), "a file of qubes-usb-proxy that ours does not ship was left behind");
  t.is(dpkg("--audit").stdout, "");

  // its dependent needs a qubes-usb-proxy: ours cannot go alone, and dpkg says so
  r = dpkg("-r", "usbip-qrexec");
  t.not(r.status, 0);
  t.regex(r.stdout + r.stderr, /dependency problems/);
  r = dpkg("-r", "qubes-vm-recommended", "usbip-qrexec");
  t.is(r.status, 0, r.stdout + r.stderr);
  r = dpkg("-P", "usbip-qrexec", "qubes-usb-proxy");
  t.is(r.status, 0, r.stdout + r.stderr);
  t.is(dpkg("--audit").stdout, "");
  const left = files(R).filter((f) => !f.startsWith("var/") && !/\/stand-in$/.test(f));
  t.deepEqual(left, [], `left behind: ${left.join(", ")}`);
  t.deepEqual(dpkg("-l").stdout.split("\n").filter((l) => /^[a-z]{2} /.test(l) && !l.startsWith("ii ")), [], "packages not cleanly installed or removed");
});

test("the RPM: rpm -qpi / -qpl / requires / provides / conflicts / obsoletes, the .deb's files; unpacked with rpm2cpio it runs", (t) => {
  if (!have("rpmbuild") || !have("rpm2cpio") || !have("cpio")) {
    if (process.env.CI) t.fail("rpmbuild, rpm2cpio and cpio are needed (apt-get install rpm rpm2cpio cpio)");
    else t.log("SKIPPED LOUDLY: no rpmbuild/rpm2cpio/cpio on this machine (apt-get install rpm rpm2cpio cpio)");
    if (!process.env.CI) t.pass();
    return;
  }
  const rpm = build("package-rpm.mjs");
  t.regex(path.basename(rpm), new RegExp(`^usbip-qrexec-${version.replace(/\./g, "\\.")}-1\\.(x86_64|aarch64|i686)\\.rpm$`));
  const q = (...args: string[]) => execFileSync("rpm", ["-qp", ...args, rpm], { encoding: "utf8" });
  const info = q("-i");
  t.regex(info, /^Name\s*: usbip-qrexec$/m);
  t.regex(info, new RegExp(`^Version\\s*: ${version.replace(/\./g, "\\.")}$`, "m"));
  t.regex(info, /^License\s*: GPL-2\.0-or-later$/m);
  t.regex(info, /^Packager\s*: [^<>]+ <[^@<>\s]+@[^<>\s]+>$/m);
  const requires = q("-R").split("\n");
  t.true(requires.includes("nodejs >= 20"), `Requires: nodejs >= 20 missing from ${requires.join(", ")}`);
  t.false(requires.some((r) => r.startsWith("python")), `python among the requirements: ${requires.join(", ")}`);
  t.true(q("--provides").split("\n").includes("qubes-usb-proxy = 5.0"));
  t.true(q("--conflicts").split("\n").includes("qubes-usb-proxy"));
  t.true(q("--obsoletes").split("\n").includes("qubes-usb-proxy < 5.0"));
  t.regex(q("-c"), /^\/etc\/qubes-rpc\/qubes\.USB\.config$/m, "the config is not a %config file");
  // the same files as the .deb, but for where Fedora keeps udev rules and licenses
  const rpmFiles = q("-l", "--noconfig").split("\n").concat(q("-c").split("\n")).filter(Boolean);
  const dir = tmp("rpm-unpacked");
  execFileSync("sh", ["-c", `rpm2cpio ${JSON.stringify(rpm)} | cpio -idm --quiet`], { cwd: dir });
  const unpackedFiles = files(dir).map((f) => `/${f}`);
  for (const f of unpackedFiles) t.true(rpmFiles.includes(f), `${f} unpacked but not listed by rpm -qpl`);
  const debDir = tmp("deb-unpacked");
  execFileSync("dpkg-deb", ["-x", deb, debDir]);
  const norm = (f: string) => f.replace(/^\/lib\/udev\//, "/usr/lib/udev/");
  t.deepEqual(
    unpackedFiles.filter((f) => !f.startsWith("/usr/share/licenses/")).map(norm),
    files(debDir).map((f) => norm(`/${f}`)).filter((f) => f !== "/usr/share/doc/usbip-qrexec/copyright").sort(),
  );
  t.true(existsSync(path.join(dir, "usr/share/licenses/usbip-qrexec/COPYING")));
  checkUnpacked(t, dir);
});
