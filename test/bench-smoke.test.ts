/**
 * The codec benchmark runs and its self-checks pass (decoded counts, payload bytes, encoder
 * output identical and zero-copy). Speed itself is not asserted here: see bench/.
 */
import test from "ava";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import path from "node:path";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
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
  const o = JSON.parse(r.stdout) as { ok: boolean; benches: Array<{ bench: string; checks: unknown; throughput?: { ratio: number; eventLoopRelayRatio: number; nodePipeRatio: number; nodeBlockingCopyRatio: number; blockingRelayRatio: number }; latency?: { addedP50us: number } }> };
  t.true(o.ok);
  t.deepEqual(o.benches.map((b) => b.bench), ["codec", "relay", "soak"]);
  const soak = o.benches[2] as unknown as { checks: unknown; urbs: number; stuck: number };
  t.is(soak.checks, "ok");
  t.true(soak.urbs > 0 && soak.stuck === 0);
  const relay = o.benches[1]!;
  t.is(relay.checks, "ok");
  t.true(relay.throughput!.ratio > 0 && relay.throughput!.eventLoopRelayRatio > 0 && relay.throughput!.nodePipeRatio > 0 && relay.throughput!.nodeBlockingCopyRatio > 0 && relay.throughput!.blockingRelayRatio > 0);
  t.true(Number.isFinite(relay.latency!.addedP50us));
  // the relay thread's stage lets go of its stdio fds at the end (pointed at /dev/null, not closed): Node's exit finds them valid
  t.notRegex(r.stderr, /Failed to sync|Bad file descriptor/);
});

// (--one-thread writes each chunk out before it reads again: fit for USB/IP's bounded request and
// answer traffic, not for cat's unbounded full duplex, where both socket buffers fill)
for (const oneThread of [false]) {
  test(`bench/koffi-hop.js${oneThread ? " --one-thread" : ""}: 4 MiB through the hop around cat come out byte for byte, and its exit status is cat's`, async (t) => {
    const { spawn } = await import("node:child_process");
    const { createHash, randomBytes } = await import("node:crypto");
    const data = randomBytes(4 << 20);
    const child = spawn(process.execPath, [path.join(repoRoot, "dist/bench/koffi-hop.js"), ...(oneThread ? ["--one-thread"] : []), "cat"], { stdio: ["pipe", "pipe", "inherit"] });
    const out = createHash("sha256");
    let n = 0;
    child.stdout.on("data", (b: Buffer) => {
      out.update(b);
      n += b.length;
    });
    child.stdin.end(data);
    const code = await new Promise<number | null>((r) => child.on("close", (c) => r(c)));
    t.is(code, 0);
    t.is(n, data.length);
    t.is(out.digest("hex"), createHash("sha256").update(data).digest("hex"));
  });
}

test("the usbfs servers bench:vm sets beside the userspace backend: the C one builds without a warning, both refuse a command line without `export BUSID` (exit 64, usage) and fail on a busid that does not exist", async (t) => {
  const exe = path.join(mkdtempSync(path.join(tmpdir(), "usbfs-server-")), "usbfs-server");
  const gcc = await promisify(execFile)("gcc", ["-O2", "-Wall", "-Wextra", "-Werror", "-o", exe, path.join(repoRoot, "bench/c/usbfs-server.c")]).then(
    () => "",
    (e: Error & { stderr?: string }) => e.stderr ?? e.message,
  );
  t.is(gcc, "");
  for (const argv of [[exe], [process.execPath, path.join(repoRoot, "dist/bench/koffi-usbfs-server.js")]]) {
    const usage = await promisify(execFile)(argv[0]!, [...argv.slice(1), "node", "cli.js", "list"]).then(
      () => ({ code: 0, stderr: "" }),
      (e: { code: number; stderr: string }) => e,
    );
    t.is(usage.code, 64, argv.join(" "));
    t.regex(usage.stderr, /usage: .*usbfs-server \.\.\. export BUSID/);
    const missing = await promisify(execFile)(argv[0]!, [...argv.slice(1), "node", "cli.js", "export", "9-9.9"]).then(
      () => ({ code: 0, stderr: "" }),
      (e: { code: number; stderr: string }) => e,
    );
    t.not(missing.code, 0, `${argv.join(" ")} export 9-9.9`);
    t.regex(missing.stderr, /^usbfs-server: .*9-9\.9.*\n$/, "one line naming what is missing");
  }
});
