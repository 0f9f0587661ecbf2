/** Guest-side helpers for VM scenarios: commands, waiting, files, checksums, dmesg. */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, readdirSync, openSync, readSync, closeSync, fstatSync, fsyncSync, writeFileSync, writeSync } from "node:fs";

export class ScenarioFailure extends Error {}

export function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new ScenarioFailure(what);
}

export function sh(cmd: string, args: string[] = [], opts: { input?: string | Buffer; allowFail?: boolean; timeoutMs?: number } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", input: opts.input, timeout: opts.timeoutMs ?? 60_000, stdio: ["pipe", "pipe", "pipe"] });
  } catch (e) {
    if (opts.allowFail) return "";
    const err = e as { stderr?: string; message: string };
    throw new ScenarioFailure(`${cmd} ${args.join(" ")}: ${(err.stderr || err.message).trim().split("\n").slice(-3).join(" | ")}`);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `f` every `everyMs` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(what: string, f: () => T | undefined | false | null, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new ScenarioFailure(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function read(p: string): string {
  return readFileSync(p, "utf8").trim();
}
export function tryRead(p: string): string | undefined {
  try {
    return readFileSync(p, "utf8").trim();
  } catch {
    return undefined;
  }
}
export function write(p: string, s: string): void {
  writeFileSync(p, s);
}

/** sha256 of the first `bytes` of a file or block device, read with O_DIRECT-free plain reads. */
export function sha256(p: string, bytes?: number): string {
  const fd = openSync(p, "r");
  try {
    const h = createHash("sha256");
    const buf = Buffer.alloc(1 << 20);
    let left = bytes ?? fstatSync(fd).size;
    let pos = 0;
    while (left > 0) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, left), pos);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      left -= n;
      pos += n;
    }
    return h.digest("hex");
  } finally {
    closeSync(fd);
  }
}

export function modprobe(...mods: string[]): void {
  for (const m of mods) sh("modprobe", [m]);
}

/** Block devices (sdX) whose sysfs path goes through the given USB device dir. */
export function diskOf(usbBusid: string): string | undefined {
  for (const d of readdirSync("/sys/block")) {
    if (!d.startsWith("sd")) continue;
    let real = "";
    try {
      real = execFileSync("readlink", ["-f", `/sys/block/${d}`], { encoding: "utf8" }).trim();
    } catch {
      continue;
    }
    if (real.includes(`/${usbBusid}/`) && existsSync(`/dev/${d}`)) {
      const size = Number(tryRead(`/sys/block/${d}/size`) ?? "0");
      if (size > 0) return `/dev/${d}`;
    }
  }
  return undefined;
}

/** dmesg lines (the whole ring buffer). */
export function dmesgLines(): string[] {
  return sh("dmesg").split("\n");
}

/**
 * Now, as the kernel log's timestamps count (seconds since boot), for dmesgSince. Not a line
 * count: once the ring buffer is full, every new line pushes an old one out and the count stays
 * the same, so "the lines after line N" would be none — and every "the kernel logged nothing"
 * check would pass whatever the kernel said.
 */
export function dmesgMark(): number {
  return Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
}

/** The kernel's lines from `mark` on (a line without a timestamp goes with the one before it). */
export function dmesgSince(mark: number): string[] {
  const out: string[] = [];
  let keep = false;
  for (const l of dmesgLines()) {
    const t = /^\[\s*(\d+\.\d+)\]/.exec(l);
    if (t) keep = Number(t[1]) >= mark - 0.01; // /proc/uptime has hundredths; printk's clock runs alongside
    if (keep) out.push(l);
  }
  return out;
}

const BAD = /\bBUG\b|Oops|general protection|WARNING:|Call Trace|kernel panic/i;
export function dmesgProblems(mark: number): string[] {
  return dmesgSince(mark).filter((l) => BAD.test(l));
}

export interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Spawned {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Processes whose command line contains `needle` (excluding ourselves). */
export function processesMatching(needle: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmd = tryRead(`/proc/${pid}/cmdline`)?.replace(/\0/g, " ") ?? "";
    if (cmd.includes(needle)) out.push(`${pid} ${cmd}`);
  }
  return out;
}

/** Write 1 MiB of random data at `at` through the block device, fsync, and check it is in the image file. */
export function checkWriteLands(disk: string, image: string, at = 5 << 20): void {
  const MIB = 1 << 20;
  const data = randomBytes(MIB);
  const fd = openSync(disk, "r+");
  writeSync(fd, data, 0, MIB, at);
  fsyncSync(fd);
  closeSync(fd);
  const back = Buffer.alloc(MIB);
  const ifd = openSync(image, "r");
  readSync(ifd, back, 0, MIB, at);
  closeSync(ifd);
  check(back.equals(data), `the 1 MiB written through ${disk} is not in the image ${image}`);
}

/** Wait for a spawned process to end; fails the scenario after `ms`. Resolves with its exit code. */
export async function ended(p: Spawned, ms: number, what: string): Promise<number | null> {
  const r = await Promise.race([p.exited, new Promise<undefined>((res) => setTimeout(() => res(undefined), ms))]);
  check(r !== undefined, `${what} did not end within ${ms / 1000} s; stderr: ${p.stderr().trim()}`);
  return r.code;
}

/** Read the first `mib` MiB of a disk with O_DIRECT again and again until it fails (or is killed). */
export function readLoop(disk: string, mib: number): Spawned {
  return start("sh", ["-c", `while dd if=${disk} of=/dev/null bs=1M count=${mib} iflag=direct 2>/dev/null; do :; done`]);
}

/** The usbfs node of the USB device `busid` (/dev/bus/usb/BBB/DDD, from its sysfs busnum and devnum). */
export function usbfsNode(busid: string): string {
  const n = (f: string) => (tryRead(`/sys/bus/usb/devices/${busid}/${f}`) ?? "").padStart(3, "0");
  return `/dev/bus/usb/${n("busnum")}/${n("devnum")}`;
}
