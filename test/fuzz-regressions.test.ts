/** Every input the fuzzer ever flagged (fuzz/regressions/*.bin + .json) replayed through its oracle. */
import test from "ava";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { runOne, type Target } from "../fuzz/oracle.js";
import { capture, repoRoot } from "./helpers/fixtures.js";

const dir = path.join(repoRoot, "fuzz/regressions");
const files = readdirSync(dir).filter((f) => f.endsWith(".bin"));

test("there are regression inputs to replay", (t) => {
  t.true(files.length > 0);
});

for (const f of files) {
  test(`fuzz regression ${f}`, (t) => {
    const meta = JSON.parse(readFileSync(path.join(dir, f.replace(/\.bin$/, ".json")), "utf8")) as { target: Target; phase: string; cuts: number[]; context: string; expect: string };
    const [name, start] = meta.context.split("@");
    const context = name ? capture(name).subarray(Number(start ?? 0)) : Buffer.alloc(0);
    const input = readFileSync(path.join(dir, f));
    const out = runOne(meta.target, input, meta.cuts, context, meta.phase);
    // the outcome recorded when the input was triaged (an error code, or "ok")
    t.is(out.feature.split(":")[2], meta.expect);
  });
}
