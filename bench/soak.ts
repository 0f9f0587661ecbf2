/**
 * Soak (issue 6): our userspace host -> frontend relay -> backend relay (device checks, unlink
 * hold) -> URB server -> a virtual SourceSink, all in one process, at full speed for a while
 * (60 s by default) with a random mix of URB sizes (1 B..256 KiB, IN and OUT) and unlinks
 * (1 URB in 8, after 0-3 ms). Checked at the end, and printed as JSON:
 *  - every URB answered: none left in any table, every submit promise settled within 5 s of
 *    the load stopping (no stuck URB);
 *  - CMD/RET balanced on both relays: CMD_SUBMIT = RET_SUBMIT + unlinked, CMD_UNLINK = RET_UNLINK
 *    (the backend relay's own answers included), the host's counts equal the relays';
 *  - every IN byte the mod63 pattern, every OUT transfer seen intact by the device;
 *  - memory: heap after a full GC grows by at most HEAP_GROWTH_MIB between the end of the
 *    warm-up and the end, and the RSS stays under RSS_MAX_MIB (the bounds we state).
 * Usage: node dist/bench/soak.js [--seconds N] [--seed N]
 */
import { mulberry32 } from "../protocol/prng.js";
import { PassThrough } from "node:stream";
import { pathToFileURL } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Direction, Errno } from "../protocol/constants.js";
import { UrbRelay } from "../relay/urb-relay.js";
import { UrbServer } from "../device/urb-server.js";
import { mod63, SourceSink } from "../device/source-sink.js";
import { UsbHost } from "../host/usb-host.js";
import { Request } from "../usb/setup.js";

export const HEAP_GROWTH_MIB = 16;
export const RSS_MAX_MIB = 512;
export const SOAK_DEVID = 0x10002;
const DEVID = SOAK_DEVID;

export interface SoakResult {
  bench: "soak";
  seconds: number;
  urbs: number;
  urbsPerSecond: number;
  MBps: number;
  unlinks: { sent: number; cancelled: number; completedFirst: number };
  stuck: number;
  relays: { frontend: Record<string, number>; backend: Record<string, number> };
  memory: { heapWarmMiB: number; heapEndMiB: number; heapGrowthMiB: number; heapGrowthBoundMiB: number; rssMaxMiB: number; rssBoundMiB: number };
  checks: "ok" | string[];
}

/** A small deterministic PRNG so a failing run can be repeated with its seed. */
const prng = mulberry32;

function gcFunction(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}
const MiB = (n: number) => Math.round((n / (1 << 20)) * 10) / 10;

export async function soak(o: { seconds: number; seed?: number; concurrency?: number; warmupSeconds?: number; device?: SourceSink }): Promise<SoakResult> {
  const rnd = prng(o.seed ?? 1);
  const gc = gcFunction();
  const device = o.device ?? new SourceSink(DEVID);
  const hostToFront = new PassThrough();
  const frontToHost = new PassThrough();
  const frontToBack = new PassThrough();
  const backToFront = new PassThrough();
  const backToServer = new PassThrough();
  const serverToBack = new PassThrough();
  const server = new UrbServer(device, backToServer, serverToBack);
  const back = new UrbRelay({ clientIn: frontToBack, clientOut: backToFront, serverIn: serverToBack, serverOut: backToServer, device: { devid: DEVID, endpoint: (ep, dir) => device.endpoint(ep, dir as Direction) }, unlinkGraceMs: 2 });
  const front = new UrbRelay({ clientIn: hostToFront, clientOut: frontToHost, serverIn: backToFront, serverOut: frontToBack });
  const host = new UsbHost(DEVID, frontToHost, hostToFront);
  server.start();
  back.start();
  front.start();
  const problems: string[] = [];
  const violations = Promise.all([
    front.done.then((r) => r.violation && problems.push(`frontend relay: ${r.violation.error.message}`)),
    back.done.then((r) => r.violation && problems.push(`backend relay: ${r.violation.error.message}`)),
    server.done.then((r) => r.violation && problems.push(`URB server: ${r.violation.message}`)),
  ]);
  const set = await host.control({ bmRequestType: 0, bRequest: Request.SET_CONFIGURATION, wValue: 1, wIndex: 0, wLength: 0 });
  if (set.status !== 0) throw new Error(`SET_CONFIGURATION failed: ${set.status}`);

  const counts = { urbs: 0, bytes: 0, unlinks: 0, cancelled: 0, completedFirst: 0, badData: 0, badStatus: 0 };
  const outstanding = new Set<Promise<unknown>>();
  let running = true;
  const size = () => {
    const r = rnd();
    return r < 0.4 ? 1 + Math.floor(rnd() * 512) : r < 0.8 ? 1 + Math.floor(rnd() * 16384) : 1 + Math.floor(rnd() * 262144);
  };
  const one = async () => {
    const dirIn = rnd() < 0.5;
    const len = size();
    let seq = 0;
    const unlinkAfter = rnd() < 0.125 ? Math.floor(rnd() * 4) : -1;
    const p = dirIn ? host.submit(1, Direction.IN, len, { onSeqnum: (s) => (seq = s) }) : host.submit(2, Direction.OUT, 0, { out: mod63(len), onSeqnum: (s) => (seq = s) });
    let unlinked: Promise<number> | undefined;
    if (unlinkAfter >= 0) {
      if (unlinkAfter > 0) await new Promise((r) => setTimeout(r, unlinkAfter - 1));
      counts.unlinks++;
      unlinked = host.unlink(seq);
      unlinked.catch(() => {}); // awaited below; a close meanwhile must not be unhandled
    }
    const r = await p;
    counts.urbs++;
    const u = unlinked ? await unlinked : undefined;
    if (r.status === Errno.ECONNRESET && u !== undefined && u !== 0) counts.cancelled++;
    else if (r.status !== 0) counts.badStatus++;
    else {
      if (u === 0) counts.completedFirst++;
      else if (u !== undefined) counts.badStatus++; // RET_UNLINK said cancelled, yet a RET_SUBMIT came with 0
      const got = r.payload.length === 1 ? r.payload[0]! : Buffer.concat(r.payload);
      if (dirIn ? !(r.actualLength === len && got.equals(mod63(len))) : r.actualLength !== len) counts.badData++;
      counts.bytes += len;
    }
  };
  const worker = async () => {
    while (running) {
      const p = one();
      outstanding.add(p);
      await p.finally(() => outstanding.delete(p));
    }
  };
  const t0 = Date.now();
  const workers = Array.from({ length: o.concurrency ?? 8 }, () => worker().catch((e: Error) => problems.push(`worker: ${e.message}`)));
  let rssMax = 0;
  const sampler = setInterval(() => (rssMax = Math.max(rssMax, process.memoryUsage().rss)), 250);
  const warm = o.warmupSeconds ?? Math.min(5, o.seconds / 4);
  await new Promise((r) => setTimeout(r, warm * 1000));
  gc();
  const heapWarm = process.memoryUsage().heapUsed;
  await new Promise((r) => setTimeout(r, (o.seconds - warm) * 1000));
  running = false;
  const elapsed = (Date.now() - t0) / 1000;
  const drained = await Promise.race([Promise.all(workers).then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 5000))]);
  const stuck = outstanding.size;
  if (!drained) problems.push(`${stuck} URBs never answered (stuck) 5 s after the load stopped`);
  clearInterval(sampler);
  rssMax = Math.max(rssMax, process.memoryUsage().rss);
  gc();
  const heapEnd = process.memoryUsage().heapUsed;

  for (const [name, t] of [["frontend", front.table], ["backend", back.table]] as const) if (t.size !== 0) problems.push(`${name} relay still tracks ${t.size} URBs`);
  const f = front.stats;
  const b = back.stats;
  if (f.cmdSubmit !== host.stats.urbs) problems.push(`host submitted ${host.stats.urbs} URBs, the frontend relay saw ${f.cmdSubmit} CMD_SUBMIT`);
  if (f.cmdSubmit !== f.retSubmit + counts.cancelled) problems.push(`frontend relay: ${f.cmdSubmit} CMD_SUBMIT != ${f.retSubmit} RET_SUBMIT + ${counts.cancelled} unlinked`);
  if (f.cmdUnlink !== counts.unlinks || f.retUnlink !== f.cmdUnlink) problems.push(`frontend relay: ${counts.unlinks} unlinks sent, ${f.cmdUnlink} CMD_UNLINK, ${f.retUnlink} RET_UNLINK`);
  if (b.cmdSubmit !== f.cmdSubmit || b.cmdUnlink !== f.cmdUnlink) problems.push(`backend relay saw ${b.cmdSubmit} CMD_SUBMIT / ${b.cmdUnlink} CMD_UNLINK, the frontend relay ${f.cmdSubmit} / ${f.cmdUnlink}`);
  if (b.retUnlink + b.unlinksAnswered !== b.cmdUnlink) problems.push(`backend relay: ${b.cmdUnlink} CMD_UNLINK != ${b.retUnlink} RET_UNLINK + ${b.unlinksAnswered} answered by the hold`);
  if (counts.badStatus > 0) problems.push(`${counts.badStatus} URBs ended with an unexpected status`);
  if (counts.badData > 0) problems.push(`${counts.badData} URBs carried wrong data or length`);
  if (device.stats.corrupt > 0) problems.push(`the device saw ${device.stats.corrupt} corrupt OUT transfers`);
  if (counts.unlinks === 0 || counts.cancelled === 0) problems.push(`the unlink path was not exercised (${counts.unlinks} sent, ${counts.cancelled} cancelled)`);
  const growth = heapEnd - heapWarm;
  if (growth > HEAP_GROWTH_MIB * (1 << 20)) problems.push(`heap grew by ${MiB(growth)} MiB after the warm-up (bound ${HEAP_GROWTH_MIB} MiB)`);
  if (rssMax > RSS_MAX_MIB * (1 << 20)) problems.push(`RSS reached ${MiB(rssMax)} MiB (bound ${RSS_MAX_MIB} MiB)`);
  host.close();
  front.stop();
  back.stop();
  await Promise.race([violations, new Promise((r) => setTimeout(r, 1000))]);
  return {
    bench: "soak",
    seconds: Math.round(elapsed * 10) / 10,
    urbs: counts.urbs,
    urbsPerSecond: Math.round(counts.urbs / elapsed),
    MBps: Math.round(counts.bytes / elapsed / 1e5) / 10,
    unlinks: { sent: counts.unlinks, cancelled: counts.cancelled, completedFirst: counts.completedFirst },
    stuck,
    relays: { frontend: { ...f }, backend: { ...b } },
    memory: { heapWarmMiB: MiB(heapWarm), heapEndMiB: MiB(heapEnd), heapGrowthMiB: MiB(growth), heapGrowthBoundMiB: HEAP_GROWTH_MIB, rssMaxMiB: MiB(rssMax), rssBoundMiB: RSS_MAX_MIB },
    checks: problems.length === 0 ? "ok" : problems,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (name: string, dflt: number) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? Number(process.argv[i + 1]) : dflt;
  };
  const r = await soak({ seconds: arg("--seconds", 60), seed: arg("--seed", Date.now() % 1e6) });
  process.stdout.write(JSON.stringify(r, null, 2) + "\n");
  process.exitCode = r.checks === "ok" ? 0 : 1;
}
