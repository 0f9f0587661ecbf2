import { createHash, randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { PassThrough } from "node:stream";
import { formatViolation } from "../protocol/errors.js";
import { UrbRelay } from "../relay/urb-relay.js";
import { BotClient } from "./bot-client.js";
import { enumerate } from "./enumerate.js";
import { connectService } from "./service-link.js";
import { UsbHost } from "./usb-host.js";

const MIB = 1 << 20;

/** What the demo's frontend measured and found (the demo command prints it). */
export interface DemoResult {
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

/**
 * The demo's frontend: our userspace USB host behind the validating relay, on the link on fd 0/1
 * (qrexec-sim runs it as its local command). Reads the whole virtual disk and checks it against
 * the image file, writes 1 MiB and reads it back; `progress` hears how far it is.
 */
export async function runDemoFrontend(image: string, chunkBytes: number, progress: (what: string, done: number, total: number, stats: { urbs: number; bytes: number }) => void = () => {}): Promise<DemoResult> {
  const link = await connectService("stdio");
  const toRelay = new PassThrough();
  const fromRelay = new PassThrough();
  const relay = new UrbRelay({ clientIn: toRelay, clientOut: fromRelay, serverIn: link.input, serverOut: link.output, serverPrefix: link.rest });
  relay.start();
  const host = new UsbHost(link.handshake.devid, fromRelay, toRelay);
  const problems: string[] = [];
  const tick = (what: string, done: number, total: number) => progress(what, done, total, { urbs: relay.stats.retSubmit, bytes: relay.stats.payloadBytes });
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
    host.close();
    relay.stop();
    const r = await relay.done;
    result.relay = { cmdSubmit: r.stats.cmdSubmit, retSubmit: r.stats.retSubmit, violation: r.violation ? formatViolation(r.violation.error) : null };
    if (r.violation) problems.push(`relay: ${result.relay.violation}`);
    result.ok = problems.length === 0;
  }
  return result;
}
