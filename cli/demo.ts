/**
 * `usbip-qrexec demo`: the whole engine on any machine, no root, no modules: a virtual USB disk
 * exported through the qrexec simulator, every URB validated by the relay on the way, enumerated
 * by our userspace host, read and written with checksums, with live URB/s and MB/s.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, openSync, readFileSync, closeSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { makeLogger } from "../shared/log.js";
import { terminationSignal } from "../qrexec/agent.js";
import { InterruptedError } from "../protocol/errors.js";
import { runDemoFrontend, type DemoResult } from "../host/demo-frontend.js";
import { runQrexecSim } from "../qrexec/sim.js";
import { type Command, parse, printHelp, writeOut } from "./command.js";
import { ExitCode, signalExitCode, UsageError } from "./errors.js";

const MIB = 1 << 20;
const help = `usage: usbip-qrexec demo [--size MiB] [--chunk KiB]

Show the engine end to end on this machine (no root, no kernel modules, no
hardware):
  1. a random disk image of --size MiB (default 16) in a temporary directory;
  2. 'usbip-qrexec export --virtual mass-storage:IMAGE' as the service of the
     qrexec simulator (qrexec-sim); the frontend side is our userspace USB
     host behind the validating relay (every CMD_* and RET_* decoded and
     checked, as in 'import --mode relay');
  3. enumeration (device, configuration, interface and endpoint descriptors),
     INQUIRY and READ CAPACITY over bulk-only transport;
  4. the whole disk read with READ(10) (--chunk KiB per command, default 256)
     and checked against the image's sha256; 1 MiB written with WRITE(10),
     read back and found in the image.
A live line shows URB/s and MB/s on stderr; a summary follows on stdout. The
exit status is 0 when every check passed; the temporary directory is removed
on every exit path, Ctrl-C included.

Options:
  --size N     disk size in MiB (1..1024, default 16)
  --chunk N    KiB per READ(10)/WRITE(10) (4..1024, a multiple of 4; 256)
  -h, --help   this text`;


export const demoCommand: Command = {
  name: "demo",
  help,
  exitWhenDone: true,
  async run(argv) {
    const { values } = parse("demo", argv, { size: { type: "string", default: "16" }, chunk: { type: "string", default: "256" }, "local-side": { type: "string" } });
    if (values.help) {
      await printHelp(help);
      return ExitCode.OK;
    }
    const size = Number(values.size);
    const chunk = Number(values.chunk);
    if (!Number.isInteger(size) || size < 1 || size > 1024) throw new UsageError(`demo: --size must be an integer 1..1024 (MiB), not "${values.size}"`);
    if (!Number.isInteger(chunk) || chunk < 4 || chunk > 1024 || chunk % 4 !== 0) throw new UsageError(`demo: --chunk must be a multiple of 4 in 4..1024 (KiB), not "${values.chunk}"`);
    // internal: the frontend half, run by qrexec-sim as its local command (fd 0/1 = the link)
    if (values["local-side"] !== undefined) return localSide(values["local-side"], chunk * 1024);
    return orchestrate(size, chunk);
  },
};

async function orchestrate(size: number, chunk: number): Promise<number> {
  const dir = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-demo-"));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  process.once("exit", cleanup);
  // Ctrl-C reaches the whole process group (the simulator and both sides end with it): this
  // side waits for them, removes the directory and says it was interrupted, not that it failed
  const signal = terminationSignal();
  let interrupted: NodeJS.Signals | undefined;
  signal.promise.then((s) => (interrupted = s), () => {});
  try {
    const image = path.join(dir, "disk.img");
    const fd = openSync(image, "w");
    for (let i = 0; i < size; i++) writeSync(fd, randomBytes(MIB));
    closeSync(fd);
    const resultFile = path.join(dir, "result.json");
    const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/usbip-qrexec.js");
    process.stderr.write(`demo: ${size} MiB virtual disk exported through qrexec-sim; the frontend is our userspace host behind the validating relay\n`);
    const code = await runQrexecSim(
      [process.execPath, cli, "demo", "--local-side", `${image}:${resultFile}`, "--chunk", String(chunk)],
      [process.execPath, cli, "export", "--virtual", `mass-storage:${image}`],
      "socket",
      makeLogger("demo", false),
    );
    await new Promise((r) => setImmediate(r)); // a signal that ended the sides is seen here first
    if (interrupted !== undefined) throw new InterruptedError(interrupted, "(the demo did not finish)");
    let r: DemoResult;
    try {
      r = JSON.parse(readFileSync(resultFile, "utf8")) as DemoResult;
    } catch {
      process.stderr.write(`usbip-qrexec demo: the frontend side produced no result (exit ${code})\n`);
      return ExitCode.FAILURE;
    }
    const mbps = (b: number, s: number) => (b / 1e6 / Math.max(s, 1e-6)).toFixed(1);
    await writeOut(
      [
        `device:  ${r.device}, ${r.blocks} blocks of ${r.blockSize} bytes (${((r.blocks * r.blockSize) / MIB).toFixed(1)} MiB)`,
        `read:    ${(r.readBytes / MIB).toFixed(1)} MiB in ${r.readSeconds.toFixed(2)} s = ${mbps(r.readBytes, r.readSeconds)} MB/s, ${r.readUrbs} URBs (${Math.round(r.readUrbs / Math.max(r.readSeconds, 1e-6))} URB/s); sha256 ${r.problems.some((p) => p.startsWith("read")) ? "DIFFERS from" : "matches"} the image`,
        `write:   ${(r.writeBytes / MIB).toFixed(1)} MiB in ${r.writeSeconds.toFixed(2)} s = ${mbps(r.writeBytes, r.writeSeconds)} MB/s; ${r.problems.some((p) => p.startsWith("write")) ? "NOT read back identical or not in the image file" : "read back identical and found in the image file"}`,
        `relay:   ${r.relay.cmdSubmit} CMD_SUBMIT and ${r.relay.retSubmit} RET_SUBMIT checked, ${r.relay.violation === null ? "no violation" : `violation: ${r.relay.violation}`}`,
        ...r.problems.map((p) => `problem: ${p}`),
        `demo: ${r.ok && code === 0 ? "ok" : "FAILED"}`,
      ].join("\n") + "\n",
    );
    return r.ok && code === 0 ? ExitCode.OK : ExitCode.FAILURE;
  } finally {
    signal.dispose();
    cleanup();
  }
}

/** The frontend half (qrexec-sim's local command): runs host/demo-frontend.ts, shows progress on stderr, writes the result file. */
async function localSide(spec: string, chunkBytes: number): Promise<number> {
  // this side has nothing to clean up: a signal (the simulator forwards Ctrl-C) ends it at once
  terminationSignal().promise.then((s) => process.exit(signalExitCode(s)), () => {});
  const sep = spec.lastIndexOf(":");
  const image = spec.slice(0, sep);
  const resultFile = spec.slice(sep + 1);
  const live = process.stderr.isTTY;
  let last = { t: Date.now(), urbs: 0, bytes: 0 };
  const result = await runDemoFrontend(image, chunkBytes, (what, done, total, { urbs, bytes }) => {
    const now = Date.now();
    if (now - last.t < (live ? 200 : 1000)) return;
    const dt = (now - last.t) / 1000;
    const line = `${what} ${(done / MIB).toFixed(1)}/${(total / MIB).toFixed(1)} MiB  ${Math.round((urbs - last.urbs) / dt)} URB/s  ${((bytes - last.bytes) / 1e6 / dt).toFixed(1)} MB/s`;
    process.stderr.write(live ? `\r  ${line}\x1b[K` : `  ${line}\n`);
    last = { t: now, urbs, bytes };
  });
  if (live) process.stderr.write("\r\x1b[K");
  writeFileSync(resultFile, JSON.stringify(result));
  return result.ok ? ExitCode.OK : ExitCode.FAILURE;
}
