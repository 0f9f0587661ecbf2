/**
 * test/vm/kernels.ts: the Debian mirror a fetched kernel comes from is the machine's own, read
 * from its apt sources in either format, skipping security-only and non-Debian entries; with
 * none, the kernel is unavailable (skipped loudly, failed in CI) rather than fetched from a
 * host name of ours.
 */
import test from "ava";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { debianMirror, KernelUnavailable, resolveKernel } from "./vm/kernels.js";

function etc(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-apt-"));
  mkdirSync(path.join(dir, "sources.list.d"));
  for (const [f, text] of Object.entries(files)) writeFileSync(path.join(dir, f), text);
  return dir;
}

test("the mirror from deb822 sources, the security archive skipped", (t) => {
  const d = etc({ "sources.list.d/debian.sources": "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\nTypes: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n" });
  t.is(debianMirror(d), "http://mirror.example/debian");
});

test("the mirror from a one-line sources.list, options and security lines skipped", (t) => {
  const d = etc({ "sources.list": "deb http://security.example/debian-security bookworm-security main\ndeb [arch=amd64] http://mirror.example/debian bookworm main contrib\n" });
  t.is(debianMirror(d), "http://mirror.example/debian");
});

test("no Debian source: the kernel is unavailable with the reason", (t) => {
  const d = etc({ "sources.list": "# nothing\n" });
  const e = t.throws(() => debianMirror(d));
  t.true(e instanceof KernelUnavailable);
  t.regex(e!.message, /no Debian mirror in the machine's apt sources/);
});

test("VM_KERNEL values outside the contract are refused with the list of valid ones", (t) => {
  const e = t.throws(() => resolveKernel("latest-and-greatest", tmpdir()));
  t.true(e instanceof KernelUnavailable);
  t.regex(e!.message, /must be 6\.1, 6\.12, newest or an exact version/);
});
