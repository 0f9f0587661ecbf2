/**
 * The kernel findings kept in fuzz/kernel-findings/ stay replayable: each has the files
 * `npm run fuzz:kernel -- --replay DIR` reads (summary.json naming target, device and whether the
 * relay validated; mutations.log and shrunk.log in the relay's own log format), the replay's
 * parser takes exactly the shrunk mutations from them, and the kernel's own words are kept.
 */
import test from "ava";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseMutations, FUZZ_FIELDS } from "../relay/mutator.js";
import { repoRoot } from "./helpers/fixtures.js";

const dir = path.join(repoRoot, "fuzz/kernel-findings");
const findings = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);

test("there are kernel findings kept", (t) => {
  t.true(findings.length > 0);
});

for (const f of findings) {
  test(`kernel finding ${f}: replayable by fuzz:kernel --replay`, (t) => {
    const at = (n: string) => path.join(dir, f, n);
    for (const n of ["summary.json", "mutations.log", "shrunk.log", "dmesg.txt"]) t.true(existsSync(at(n)), `${n} missing`);
    const s = JSON.parse(readFileSync(at("summary.json"), "utf8")) as { target: string; device: string; validate: boolean; seed: number; mutations: number; shrunkTo: number; cases?: string };
    t.true(s.target === "vhci" || s.target === "usbip-host");
    t.true(["disk", "sourcesink", "audio", "camera", "keyboard"].includes(s.device));
    t.is(typeof s.validate, "boolean");
    t.true(Number.isInteger(s.seed));
    if (s.device === "sourcesink") t.regex(s.cases ?? "", /^\d+(,\d+)*$/);
    const all = parseMutations(readFileSync(at("mutations.log"), "utf8"));
    const shrunk = parseMutations(readFileSync(at("shrunk.log"), "utf8"));
    t.is(all.length, s.mutations);
    t.is(shrunk.length, s.shrunkTo);
    // the shrunk log is a part of the whole one, mutation for mutation
    for (const m of shrunk) t.truthy(all.find((x) => x.n === m.n && x.field === m.field && x.to === m.to), `message ${m.n} is not in mutations.log`);
    for (const m of all) t.true((FUZZ_FIELDS as readonly string[]).includes(m.field));
    t.regex(readFileSync(at("dmesg.txt"), "utf8"), /\bBUG\b|Oops|general protection|WARNING:|cannot find a urb|unknown pdu|stuck in the kernel/);
  });
}
