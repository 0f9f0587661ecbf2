/**
 * `usbip-qrexec demo`: the whole engine on any machine, no root, no modules: a virtual USB disk
 * exported through the qrexec simulator, every URB validated by the relay on the way, enumerated
 * by our userspace host, read and written with checksums, with live URB/s and MB/s.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, openSync, readFileSync, readSync, closeSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import { BotClient } from "../host/bot-client.js";
import { enumerate } from "../host/enumerate.js";
import { connectService } from "../host/service-link.js";
import { UsbHost } from "../host/usb-host.js";
import { makeLogger } from "../shared/log.js";
import { terminationSignal } from "../qrexec/agent.js";
import { InterruptedError, formatViolation } from "../protocol/errors.js";
import { runQrexecSim } from "../qrexec/sim.js";
import { UrbRelay } from "../relay/urb-relay.js";
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

interface DemoResult {
  ok: boolean;
  problems: string[];
  device: string;
  blocks: number;
  blockSize: number;
  readBytes: number;
  readSeconds: number;
  readUrbs: number;
  writeBytes: number;
  writeSeconds: number;
  relay: { cmdSubmit: number; retSubmit: number; violation: string | null };
}

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

/** The frontend half: our USB host ↔ relay ↔ the link on fd 0/1. Writes only to stderr and the result file. */
async function localSide(spec: string, chunkBytes: number): Promise<number> {
  // this side has nothing to clean up: a signal (the simulator forwards Ctrl-C) ends it at once
  terminationSignal().promise.then((s) => process.exit(signalExitCode(s)), () => {});
  const sep = spec.lastIndexOf(":");
  const image = spec.slice(0, sep);
  const resultFile = spec.slice(sep + 1);
  const link = await connectService("stdio");
  const toRelay = new PassThrough();
  const fromRelay = new PassThrough();
  const relay = new UrbRelay({ clientIn: toRelay, clientOut: fromRelay, serverIn: link.input, serverOut: link.output, serverPrefix: link.rest });
  relay.start();
  const host = new UsbHost(link.handshake.devid, fromRelay, toRelay);
  const problems: string[] = [];
  const live = process.stderr.isTTY;
  let last = { t: Date.now(), urbs: 0, bytes: 0 };
  const tick = (what: string, done: number, total: number) => {
    const now = Date.now();
    if (now - last.t < (live ? 200 : 1000)) return;
    const dt = (now - last.t) / 1000;
    const urbs = relay.stats.retSubmit;
    const bytes = relay.stats.payloadBytes;
    const line = `${what} ${(done / MIB).toFixed(1)}/${(total / MIB).toFixed(1)} MiB  ${Math.round((urbs - last.urbs) / dt)} URB/s  ${((bytes - last.bytes) / 1e6 / dt).toFixed(1)} MB/s`;
    process.stderr.write(live ? `\r  ${line}\x1b[K` : `  ${line}\n`);
    last = { t: now, urbs, bytes };
  };
  const result: DemoResult = { ok: false, problems, device: "", blocks: 0, blockSize: 0, readBytes: 0, readSeconds: 0, readUrbs: 0, writeBytes: 0, writeSeconds: 0, relay: { cmdSubmit: 0, retSubmit: 0, violation: null } };
  try {
    const e = await enumerate(host);
    const bot = await BotClient.open(host, e);
    const inq = await bot.inquiry();
    result.device = `${inq.vendor} ${inq.product} (${e.device.idVendor.toString(16).padStart(4, "0")}:${e.device.idProduct.toString(16).padStart(4, "0")}, ${e.strings[e.device.iProduct] ?? "?"})`;
    const cap = await bot.readCapacity();
    result.blocks = cap.blocks;
    result.blockSize = cap.blockSize;
    const total = cap.blocks * cap.blockSize;
    const per = Math.max(1, Math.floor(chunkBytes / cap.blockSize));
    // read everything
    const h = createHash("sha256");
    const urbs0 = relay.stats.retSubmit;
    const t0 = process.hrtime.bigint();
    for (let lba = 0; lba < cap.blocks; lba += per) {
      const n = Math.min(per, cap.blocks - lba);
      h.update(await bot.read(lba, n, cap.blockSize));
      tick("read ", (lba + n) * cap.blockSize, total);
    }
    result.readSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    result.readBytes = total;
    result.readUrbs = relay.stats.retSubmit - urbs0;
    const want = createHash("sha256").update(readFileSync(image)).digest("hex");
    if (h.digest("hex") !== want) problems.push("read: the disk's sha256 differs from the image's");
    // write 1 MiB (or the whole disk if smaller) in the middle, read it back
    const wBlocks = Math.min(cap.blocks, Math.floor(MIB / cap.blockSize));
    const wLba = Math.floor((cap.blocks - wBlocks) / 2);
    const data = randomBytes(wBlocks * cap.blockSize);
    const t1 = process.hrtime.bigint();
    for (let i = 0; i < wBlocks; i += per) {
      const n = Math.min(per, wBlocks - i);
      await bot.write(wLba + i, data.subarray(i * cap.blockSize, (i + n) * cap.blockSize), cap.blockSize);
      tick("write", (i + n) * cap.blockSize, data.length);
    }
    result.writeSeconds = Number(process.hrtime.bigint() - t1) / 1e9;
    result.writeBytes = data.length;
    const back: Buffer[] = [];
    for (let i = 0; i < wBlocks; i += per) back.push(await bot.read(wLba + i, Math.min(per, wBlocks - i), cap.blockSize));
    if (!Buffer.concat(back).equals(data)) problems.push("write: the data read back differs from what was written");
    const inFile = Buffer.alloc(data.length);
    const fd = openSync(image, "r");
    readSync(fd, inFile, 0, inFile.length, wLba * cap.blockSize);
    closeSync(fd);
    if (!inFile.equals(data)) problems.push("write: the image file does not hold the written data");
  } catch (e) {
    problems.push(`error: ${(e as Error).message}`);
  } finally {
    if (live) process.stderr.write("\r\x1b[K");
    host.close();
    relay.stop();
    const r = await relay.done;
    result.relay = { cmdSubmit: r.stats.cmdSubmit, retSubmit: r.stats.retSubmit, violation: r.violation ? formatViolation(r.violation.error) : null };
    if (r.violation) problems.push(`relay: ${result.relay.violation}`);
    result.ok = problems.length === 0;
    writeFileSync(resultFile, JSON.stringify(result));
  }
  return result.ok ? ExitCode.OK : ExitCode.FAILURE;
}
