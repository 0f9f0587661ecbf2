/**
 * The codec benchmark runs and its self-checks pass (decoded counts, payload bytes, encoder
 * output identical and zero-copy). Speed itself is not asserted here: see bench/.
 */
import test from "ava";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import path from "node:path";
import { repoRoot } from "./helpers/fixtures.js";
import { runCli } from "./helpers/cli.js";

test("bench/codec.js --quick: self-checks pass and every case reports a ratio", async (t) => {
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(repoRoot, "dist/bench/codec.js"), "--quick"]);
  const r = JSON.parse(stdout) as { checks: unknown; cases: Array<{ name: string; ratio: number; ours: number; baseline: number }> };
  t.is(r.checks, "ok");
  t.is(r.cases.length, 4);
  for (const c of r.cases) {
    t.true(c.ours > 0 && c.baseline > 0 && Number.isFinite(c.ratio), c.name);
  }
});

test("usbip-qrexec bench --quick --json: codec, relay and a 10 s soak run, self-checks pass, ratios and latency reported", async (t) => {
  const r = await runCli(["bench", "--quick", "--json"], { timeoutMs: 180_000 });
  t.is(r.code, 0, r.stderr);
  const o = JSON.parse(r.stdout) as { ok: boolean; benches: Array<{ bench: string; checks: unknown; throughput?: { ratio: number; nodePipeRatio: number; nodeBlockingCopyRatio: number; blockingRelayRatio: number }; latency?: { addedP50us: number } }> };
  t.true(o.ok);
  t.deepEqual(o.benches.map((b) => b.bench), ["codec", "relay", "soak"]);
  const soak = o.benches[2] as unknown as { checks: unknown; urbs: number; stuck: number };
  t.is(soak.checks, "ok");
  t.true(soak.urbs > 0 && soak.stuck === 0);
  const relay = o.benches[1]!;
  t.is(relay.checks, "ok");
  t.true(relay.throughput!.ratio > 0 && relay.throughput!.nodePipeRatio > 0 && relay.throughput!.nodeBlockingCopyRatio > 0 && relay.throughput!.blockingRelayRatio > 0);
  t.true(Number.isFinite(relay.latency!.addedP50us));
});
