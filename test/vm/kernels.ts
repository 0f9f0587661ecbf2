/**
 * The kernels the VM suite boots (VM_KERNEL): "6.1" (the machine's own linux-image-amd64,
 * Debian 12), "6.12" (Debian 13's, Qubes OS 4.3's series), "newest" (the newest kernel of
 * trixie-backports, Qubes' kernel-latest series), or an exact version ("6.12.57+deb13-amd64").
 *
 * A kernel that is not installed is fetched with apt through a private configuration — its own
 * sources list, lists, cache and an empty status file under the cache directory — with the mirror
 * taken from the machine's own apt sources and only the suite changed, so no host name is written
 * here and the host's apt state stays as it is. The packages are unpacked with dpkg-deb -x into
 * the cache and indexed with depmod -b; nothing goes into the host's /boot or /lib/modules. The
 * guest gets the module tree as a third 9p share mounted over /lib/modules.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

export interface Kernel {
  /** the suite's name for it: 6.1, 6.12, 7.3 … (TAP lines say vm[LABEL]) */
  label: string;
  /** uname -r */
  version: string;
  vmlinuz: string;
  /** the directory holding VERSION/modules.dep: /lib/modules, or the cache's for a fetched kernel */
  modulesRoot: string;
  /** modprobe's -d: "/" for an installed kernel, the cache directory (ROOT/lib/modules) otherwise */
  root: string;
}

export class KernelUnavailable extends Error {}

const labelOf = (version: string) => /^(\d+\.\d+)/.exec(version)?.[1] ?? version;

/** Installed kernels: /boot/vmlinuz-V with /lib/modules/V/modules.dep. */
function installed(): Kernel[] {
  if (!existsSync("/boot")) return [];
  return readdirSync("/boot")
    .filter((f) => f.startsWith("vmlinuz-"))
    .map((f) => f.slice("vmlinuz-".length))
    .filter((v) => existsSync(`/lib/modules/${v}/modules.dep`))
    .sort()
    .map((v) => ({ label: labelOf(v), version: v, vmlinuz: `/boot/vmlinuz-${v}`, modulesRoot: "/lib/modules", root: "/" }));
}

/** The machine's Debian mirror, read from its apt sources (deb822 or one-line format). */
export function debianMirror(etc = "/etc/apt"): string {
  const texts: string[] = [];
  const parts = path.join(etc, "sources.list.d");
  for (const f of [path.join(etc, "sources.list"), ...(existsSync(parts) ? readdirSync(parts).filter((n) => n.endsWith(".list") || n.endsWith(".sources")).sort().map((n) => path.join(parts, n)) : [])]) {
    try {
      texts.push(readFileSync(f, "utf8"));
    } catch {
      /* none */
    }
  }
  const all = texts.join("\n");
  // a mirror that carries the main archive: its suites are named like bookworm / trixie, not *-security
  const deb822 = [...all.matchAll(/^URIs:\s*(\S+)[\s\S]*?^Suites:\s*([^\n]+)/gm)].find((m) => /\b[a-z]+\b/.test(m[2]!) && !/security/.test(m[2]!) && !/security/.test(m[1]!));
  if (deb822) return deb822[1]!.replace(/\/$/, "");
  const line = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+([a-z]+)(?:-updates)?\s/m.exec(all.split("\n").filter((l) => !/security/.test(l)).join("\n"));
  if (line) return line[1]!.replace(/\/$/, "");
  throw new KernelUnavailable("no Debian mirror in the machine's apt sources (/etc/apt/sources.list*)");
}

/** A private apt for `suite`: only its own files under `dir`. */
function privateApt(dir: string, suite: string) {
  const mirror = debianMirror();
  for (const d of ["lists/partial", "cache/archives/partial", "etc/preferences.d", "etc/apt.conf.d"]) mkdirSync(path.join(dir, d), { recursive: true });
  writeFileSync(path.join(dir, "etc/sources.list"), `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror} ${suite} main\n`);
  if (!existsSync(path.join(dir, "status"))) writeFileSync(path.join(dir, "status"), "");
  const opts = [
    `Dir::Etc::SourceList=${path.join(dir, "etc/sources.list")}`,
    "Dir::Etc::SourceParts=/dev/null",
    `Dir::Etc::Preferences=${path.join(dir, "etc/preferences")}`,
    `Dir::Etc::PreferencesParts=${path.join(dir, "etc/preferences.d")}`,
    `Dir::State::Lists=${path.join(dir, "lists")}`,
    `Dir::State::status=${path.join(dir, "status")}`,
    `Dir::Cache=${path.join(dir, "cache")}`,
    "APT::Architecture=amd64",
    "Acquire::Languages=none",
  ].flatMap((o) => ["-o", o]);
  const run = (cmd: string, args: string[], cwd?: string) => {
    const r = spawnSync(cmd, [...opts, ...args], { encoding: "utf8", cwd, timeout: 600_000, maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new KernelUnavailable(`${cmd} ${args.join(" ")} (suite ${suite}): ${(r.stderr || r.stdout).trim().split("\n").slice(-2).join(" | ")}`);
    return r.stdout;
  };
  return {
    update: () => run("apt-get", ["-q", "update"]),
    /** package names matching a regex, from the suite's lists */
    names: (prefix: string, re: RegExp) => run("apt-cache", ["pkgnames", prefix]).split("\n").filter((n) => re.test(n)),
    depends: (pkg: string) => run("apt-cache", ["depends", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", pkg]),
    download: (pkgs: string[], cwd: string) => run("apt-get", ["-q", "download", ...pkgs], cwd),
  };
}

/** Compare Debian kernel versions like 6.12.57+deb13 numerically. */
function versionKey(v: string): number[] {
  return (v.match(/\d+/g) ?? []).map(Number);
}
const newer = (a: string, b: string) => {
  const x = versionKey(a);
  const y = versionKey(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
};

/** Fetch (or reuse from the cache) the amd64 kernel of `suite` whose version matches `want`. */
function fetchKernel(cacheDir: string, suite: string, want: (version: string) => boolean, what: string): Kernel {
  const apt = privateApt(path.join(cacheDir, `apt-${suite}`), suite);
  apt.update();
  // linux-image-VERSION-amd64 (the signed image; -unsigned is the same kernel) → its version
  // the generic flavour only (not -rt-amd64, -cloud-amd64)
  const versions = apt
    .names("linux-image-", /^linux-image-\d+\.\d+[^ ]*-amd64$/)
    .filter((n) => !/-(rt|cloud)-amd64$/.test(n))
    .map((n) => n.slice("linux-image-".length))
    .filter(want)
    .sort(newer);
  const version = versions.at(-1);
  if (version === undefined) throw new KernelUnavailable(`no ${what} kernel in ${suite}`);
  // the layout version is in the name: a cache from an older layout is not taken for this one
  const dir = path.join(cacheDir, `kernel-${version}-l2`);
  const done = path.join(dir, ".complete");
  if (!existsSync(done)) {
    const tmp = `${dir}.partial`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(path.join(tmp, "debs"), { recursive: true });
    // the image package, and (7.x) the linux-binary-*, linux-modules-*, linux-base-* it depends on
    const image = `linux-image-${version}`;
    const deps = apt.depends(image).split("\n").map((l) => /^\s*(?:\|)?Depends:\s*(\S+)/.exec(l)?.[1]).filter((d): d is string => d !== undefined && /^linux-(binary|modules|base|image)-/.test(d) && d.includes(version.replace(/-amd64$/, "")));
    apt.download([image, ...deps], path.join(tmp, "debs"));
    for (const deb of readdirSync(path.join(tmp, "debs"))) execFileSync("dpkg-deb", ["-x", path.join(tmp, "debs", deb), path.join(tmp, "root")]);
    rmSync(path.join(tmp, "debs"), { recursive: true, force: true });
    const mods = ["lib/modules", "usr/lib/modules"].map((d) => path.join(tmp, "root", d)).find((d) => existsSync(path.join(d, version)));
    // /boot/vmlinuz-VERSION, or (the split packages of 7.x) /usr/lib/modules/VERSION/vmlinuz
    const vmlinuz = [path.join(tmp, "root/boot", `vmlinuz-${version}`), ...(mods === undefined ? [] : [path.join(mods, version, "vmlinuz")])].find((f) => existsSync(f));
    if (mods === undefined || vmlinuz === undefined) throw new KernelUnavailable(`${image}: no vmlinuz or modules in the unpacked packages`);
    execFileSync("depmod", ["-b", path.dirname(path.dirname(mods)) === path.join(tmp, "root") ? path.join(tmp, "root") : path.join(tmp, "root", "usr"), version]);
    renameSync(vmlinuz, path.join(tmp, "vmlinuz"));
    mkdirSync(path.join(tmp, "lib"));
    renameSync(mods, path.join(tmp, "lib/modules"));
    rmSync(path.join(tmp, "root"), { recursive: true, force: true });
    writeFileSync(path.join(tmp, ".complete"), `${version}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  }
  return { label: labelOf(version), version, vmlinuz: path.join(dir, "vmlinuz"), modulesRoot: path.join(dir, "lib/modules"), root: dir };
}

/**
 * The kernel VM_KERNEL names (default "6.1": the installed one). Throws KernelUnavailable with
 * the reason when it cannot be had.
 */
export function resolveKernel(spec: string, cacheDir: string): Kernel {
  const local = installed();
  if (spec === "6.1" || spec === "") {
    const k = local.filter((x) => x.label === "6.1").at(-1);
    if (k === undefined) throw new KernelUnavailable("no Linux 6.1 in /boot with modules (apt-get install linux-image-amd64 on Debian 12)");
    return k;
  }
  const exact = local.find((x) => x.version === spec);
  if (exact) return exact;
  if (spec === "6.12") return fetchKernel(cacheDir, "trixie", (v) => v.startsWith("6.12."), "6.12");
  if (spec === "newest") return fetchKernel(cacheDir, "trixie-backports", () => true, "backports");
  if (/^\d+\.\d+\.\d+/.test(spec)) {
    for (const suite of ["trixie", "trixie-backports", "bookworm-backports"]) {
      try {
        return fetchKernel(cacheDir, suite, (v) => v === spec, spec);
      } catch (e) {
        if (!(e instanceof KernelUnavailable) || !/^no /.test(e.message)) throw e;
      }
    }
    throw new KernelUnavailable(`no kernel ${spec} in trixie, trixie-backports or bookworm-backports`);
  }
  throw new KernelUnavailable(`VM_KERNEL must be 6.1, 6.12, newest or an exact version (6.12.57+deb13-amd64), not "${spec}"`);
}
