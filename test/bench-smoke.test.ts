/**
 * The codec benchmark runs and its self-checks pass (decoded counts, payload bytes, encoder
 * output identical and zero-copy). Speed itself is not asserted here: see bench/.
 */
import test from "ava";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import path from "node:path";
import { repoRoot } from "./helpers/fixtures.js";

test("bench/codec.js --quick: self-checks pass and every case reports a ratio", async (t) => {
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(repoRoot, "dist/bench/codec.js"), "--quick"]);
  const r = JSON.parse(stdout) as { checks: unknown; cases: Array<{ name: string; ratio: number; ours: number; baseline: number }> };
  t.is(r.checks, "ok");
  t.is(r.cases.length, 4);
  for (const c of r.cases) {
    t.true(c.ours > 0 && c.baseline > 0 && Number.isFinite(c.ratio), c.name);
  }
});
