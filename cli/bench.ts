/** `usbip-qrexec bench [--json] [--quick] [--vm]`: the benchmarks of bench/, side by side. */
import { UsbipError, RuntimeCode } from "../protocol/errors.js";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type Command, parse, printHelp, writeOut } from "./command.js";
import { ExitCode } from "./errors.js";

const help = `usage: usbip-qrexec bench [--json] [--quick] [--vm]

Run the benchmarks (source checkout only). Each compares ours against a
baseline measured in the same run and checks its own output:
  codec  decode/encode of small and 64 KiB URBs vs plain header loops and
         Buffer.copy
  relay  a 64 KiB bulk URB stream through one relay stage between pipes vs
         cat (and a bare Node pipe), and the added latency per small URB
  soak   60 s (--quick: 10 s) of random-size URBs and unlinks through both
         relays to a virtual SourceSink: no stuck URB, CMD/RET balanced, heap
         and RSS within bounds
  vm     (--vm; boots the real-kernel VM, minutes) a 64 MiB gadget disk read
         with O_DIRECT: direct kernel path vs the relays vs userspace
Prints one line per result, or with --json one object holding every bench's
JSON. Exit status 1 if a bench's self-check failed.

Options:
  --json      machine-readable output
  --quick     fewer rounds (codec, relay), a 10 s soak
  --vm        include the VM bench
  -h, --help  this text`;

interface BenchOut {
  bench: string;
  checks: "ok" | string[];
  [k: string]: unknown;
}

export const benchCommand: Command = {
  name: "bench",
  help,
  async run(argv) {
    const { values } = parse("bench", argv, { json: { type: "boolean", default: false }, quick: { type: "boolean", default: false }, vm: { type: "boolean", default: false } });
    if (values.help) {
      await printHelp(help);
      return ExitCode.OK;
    }
    const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../bench");
    if (!existsSync(path.join(dir, "codec.js"))) throw new UsbipError(RuntimeCode.INPUT, "bench: the benchmarks are not part of this installation (the Debian package ships the CLI only); run 'npx usbip-qrexec bench' in a source checkout");
    const names = ["codec", "relay", "soak", ...(values.vm ? ["vm"] : [])];
    const results: BenchOut[] = [];
    for (const name of names) {
      if (!values.json) process.stderr.write(`bench: running ${name}…\n`);
      const r = spawnSync(process.execPath, [path.join(dir, `${name}.js`), ...(values.quick ? (name === "soak" ? ["--seconds", "10"] : name === "vm" ? [] : ["--quick"]) : [])], { encoding: "utf8", maxBuffer: 64 << 20, stdio: ["ignore", "pipe", "inherit"] });
      try {
        results.push(JSON.parse(r.stdout) as BenchOut);
      } catch {
        results.push({ bench: name, checks: [`no JSON output (exit ${r.status})`] });
      }
    }
    const ok = results.every((b) => b.checks === "ok");
    if (values.json) {
      await writeOut(JSON.stringify({ ok, benches: results }, null, 2) + "\n");
      return ok ? ExitCode.OK : ExitCode.FAILURE;
    }
    const lines: string[] = [];
    for (const b of results) {
      if (b.bench === "codec") for (const c of (b.cases as { name: string; ratio: number; target: number; met: boolean }[]) ?? []) lines.push(`codec  ${c.name}: ${c.ratio}x (target ${c.target}, ${c.met ? "met" : "NOT met"})`);
      else if (b.bench === "relay") {
        const t = b.throughput as { relayThreadMBps: number; eventLoopRelayRatio: number; catMBps: number; ratio: number; target: number; met: boolean; nodePipeRatio: number };
        const l = b.latency as { addedP50us: number; addedP99us: number };
        if (t) lines.push(`relay  throughput vs cat: ${t.ratio}x (${t.relayThreadMBps} vs ${t.catMBps} MB/s; on the event loop ${t.eventLoopRelayRatio}x, a bare Node pipe ${t.nodePipeRatio}x; target ${t.target}, ${t.met ? "met" : "NOT met"})`);
        if (l) lines.push(`relay  added latency per small URB: p50 +${l.addedP50us} us, p99 +${l.addedP99us} us`);
      } else if (b.bench === "soak") {
        const m = b.memory as { heapGrowthMiB: number; heapGrowthBoundMiB: number; rssMaxMiB: number; rssBoundMiB: number };
        const u = b.unlinks as { sent: number; cancelled: number };
        lines.push(`soak   ${String(b.seconds)} s: ${String(b.urbs)} URBs (${String(b.urbsPerSecond)}/s, ${String(b.MBps)} MB/s), ${u.sent} unlinks (${u.cancelled} cancelled), ${String(b.stuck)} stuck; heap growth ${m.heapGrowthMiB} MiB (bound ${m.heapGrowthBoundMiB}), RSS max ${m.rssMaxMiB} MiB (bound ${m.rssBoundMiB})`);
      } else if (b.bench === "vm-data-path") {
        const ratios = (r: Record<string, number | null> | undefined) => Object.entries(r ?? {}).map(([k, v]) => `${k} ${v ?? "-"}x`).join(", ");
        const met = (m: Record<string, boolean> | undefined) => Object.entries(m ?? {}).map(([k, v]) => `${k} ${v ? "met" : "NOT met"}`).join(", ");
        const disk = b.disk as { vsCCopyHop: Record<string, number | null>; met: Record<string, boolean> } | undefined;
        const queued = b.queued as { readVsDirect: Record<string, number | null>; writeVsDirect: Record<string, number | null>; met: Record<string, boolean>; maxInFlight: Record<string, number> } | undefined;
        if (b.skipped) lines.push(`vm     skipped: ${String(b.skipped)}`);
        if (disk) lines.push(`vm     disk (one URB in flight) vs the C copy hop: ${ratios(disk.vsCCopyHop)} (goals 0.9 / userspace 0.8: ${met(disk.met)})`);
        if (queued) lines.push(`vm     queued (${Object.entries(queued.maxInFlight).map(([k, v]) => `${k} ${v}`).join(", ")} in flight) read vs direct: ${ratios(queued.readVsDirect)}; write: ${ratios(queued.writeVsDirect)} (${met(queued.met)})`);
      }
      if (b.checks !== "ok") lines.push(`${b.bench}: CHECK FAILED: ${Array.isArray(b.checks) ? b.checks.join("; ") : b.checks}`);
    }
    await writeOut(lines.join("\n") + "\n");
    return ok ? ExitCode.OK : ExitCode.FAILURE;
  },
};
