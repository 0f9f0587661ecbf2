#!/usr/bin/env node
// The project's test command (`npm test`, after the build): runs every suite, shows their
// output, and ends with the line CI reads: "N passed, M failed" (", K skipped" when any).
//   suites: unit/property/integration tests (ava, TAP), then the real-kernel VM suite
//   (test/vm, when present). USBIP_TEST_SUITES=unit or =vm runs only one of them.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const only = process.env.USBIP_TEST_SUITES?.split(",").map((s) => s.trim());
const totals = { passed: 0, failed: 0, skipped: 0 };

/** Run a command that prints TAP; echo it and count "ok"/"not ok" lines. */
function runTap(name, cmd, args, env = process.env) {
  return new Promise((resolve) => {
    process.stdout.write(`\n=== ${name} ===\n`);
    const child = spawn(cmd, args, { cwd: root, env, stdio: ["ignore", "pipe", "inherit"] });
    let buf = "";
    let counted = 0;
    let failedHere = 0;
    const onLine = (line) => {
      process.stdout.write(line + "\n");
      const m = /^(not ok|ok)\b.*?(# (SKIP|TODO)\b.*)?$/i.exec(line);
      if (!m) return;
      counted++;
      if (m[3]) totals.skipped++;
      else if (m[1] === "ok") totals.passed++;
      else {
        totals.failed++;
        failedHere++;
      }
    };
    child.stdout.on("data", (b) => {
      buf += b.toString();
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    child.on("close", (code, signal) => {
      if (buf) onLine(buf);
      // a suite that dies without reporting a failing test still counts as a failure
      if ((code !== 0 || signal) && failedHere === 0) {
        process.stdout.write(`not ok - ${name} exited with ${signal ?? code} after ${counted} results\n`);
        totals.failed++;
      }
      resolve();
    });
  });
}

const want = (s) => only === undefined || only.includes(s);
if (want("unit")) await runTap("unit, property and integration tests (ava)", process.execPath, [path.join(root, "node_modules/ava/entrypoints/cli.mjs"), "--tap"]);
// A short fuzz run (npm run fuzz gives it 60 s): 10 s in CI, 5 s on a developer machine.
const fuzzSeconds = process.env.FUZZ_SECONDS ?? (process.env.CI ? "10" : "5");
if (want("fuzz")) await runTap(`fuzz (${fuzzSeconds} s)`, process.execPath, [path.join(root, "dist/fuzz/run.js"), "--seconds", fuzzSeconds]);
const vm = path.join(root, "dist/test/vm/run.js");
if (want("vm") && existsSync(vm)) {
  // the VM suite installs nothing: its package scenarios unpack build/*.deb and build/*.rpm, made here
  await runTap("packages for the VM suite (npm run package, npm run package:rpm)", "sh", ["-c", `rm -f build/usbip-qrexec*.deb build/usbip-qrexec*.rpm; ${JSON.stringify(process.execPath)} scripts/package.mjs >/dev/null && echo "ok - npm run package built build/usbip-qrexec_*.deb" || echo "not ok - npm run package failed"; ${JSON.stringify(process.execPath)} scripts/package-rpm.mjs >/dev/null && echo "ok - npm run package:rpm built build/usbip-qrexec-*.rpm" || echo "not ok - npm run package:rpm failed"`]);
  // which kernels, which set: VM_KERNEL=K runs the whole suite on K alone; otherwise VM_PLAN,
  // KERNEL:SET,… with SET full, core or smoke (test/vm/guest/scenarios.ts). The default is what
  // CI runs: the full suite on 6.12 with 8 attach/detach cycles, the core set on 6.1 and on the
  // newest kernel of trixie-backports (README, Kernels, has the times).
  const plan = process.env.VM_KERNEL ? [[process.env.VM_KERNEL, process.env.VM_SET || "full"]] : (process.env.VM_PLAN ?? "6.12:full,6.1:core,newest:core").split(",").map((p) => p.trim().split(":"));
  for (const [kernel, set = "full"] of plan) {
    const env = { ...process.env, VM_KERNEL: kernel, VM_SET: set === "full" ? "" : set };
    // 8 cycles cover each of the cycle scenario's 8 kinds once (CI's plan); VM_KERNEL=K runs 30;
    // VM_CYCLES=100 is the long run
    if (set === "full" && env.VM_CYCLES === undefined) env.VM_CYCLES = process.env.VM_KERNEL ? "30" : "8";
    await runTap(`real-kernel VM suite (test/vm) on ${kernel}, ${set === "full" ? "full suite" : `${set} set`}${set === "full" && env.VM_CYCLES ? `, ${env.VM_CYCLES} cycles` : ""}`, process.execPath, [vm], env);
  }
}

const skipped = totals.skipped ? `, ${totals.skipped} skipped` : "";
process.stdout.write(`\n${totals.passed} passed, ${totals.failed} failed${skipped}\n`);
process.exitCode = totals.failed > 0 ? 1 : 0;
