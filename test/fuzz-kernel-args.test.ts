/**
 * `npm run fuzz:kernel` refuses a bad command line before it boots anything: one line naming
 * what is wrong, the usage, exit 64, no stack trace; --help prints the usage with every form.
 */
import test from "ava";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { repoRoot } from "./helpers/fixtures.js";

const run = (args: string[]) => spawnSync(process.execPath, [path.join(repoRoot, "dist/fuzz/kernel-campaign.js"), ...args], { encoding: "utf8", timeout: 30_000 });

const cases: Array<[string[], RegExp]> = [
  [[], /--target must be vhci or usbip-host$/m],
  [["--target", "xhci"], /--target must be vhci or usbip-host, not "xhci"/],
  [["--target", "vhci", "--device", "printer"], /--device must be one of disk, sourcesink, audio, camera, keyboard, not "printer"/],
  [["--target", "usbip-host", "--device", "camera"], /--device camera has no usbip-host side in the VM .*use --target vhci/],
  [["--target", "vhci", "--minutes", "0"], /--minutes must be a number of minutes above 0, not "0"/],
  [["--target", "vhci", "--rate", "2"], /--rate must be 0\.\.1, not "2"/],
  [["--target", "vhci", "--shrink-boots", "x"], /--shrink-boots must be a whole number 0\.\.100, not "x"/],
  [["--target", "vhci", "--kernel", "latest"], /--kernel must be 6\.1, 6\.12, newest or a version, not "latest"/],
  [["--replay", "/nonexistent/finding"], /--replay \/nonexistent\/finding: not a finding's directory/],
  [["--target", "vhci", "--bogus"], /Unknown option '--bogus'/],
];

for (const [args, want] of cases) {
  test(`fuzz:kernel ${args.join(" ") || "(no arguments)"}: one line, the usage, exit 64`, (t) => {
    const r = run(args);
    t.is(r.status, 64, r.stderr);
    const lines = r.stderr.trim().split("\n");
    t.regex(lines[0]!, /^fuzz:kernel: /);
    t.regex(lines[0]!, want);
    t.regex(lines[1]!, /^usage: npm run fuzz:kernel -- --target vhci\|usbip-host/);
    t.notRegex(r.stderr, /\n\s+at /, "a stack trace");
    t.is(r.stdout, "");
  });
}

test("fuzz:kernel --help: the campaign and the replay forms, exit 0", (t) => {
  const r = run(["--help"]);
  t.is(r.status, 0);
  t.regex(r.stdout, /--device disk\|sourcesink\|audio\|camera\|keyboard/);
  t.regex(r.stdout, /--replay FINDING_DIR/);
  t.regex(r.stdout, /--shrink-boots N/);
});
