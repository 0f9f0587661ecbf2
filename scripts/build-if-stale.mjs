#!/usr/bin/env node
// `prepare` (npm install, and every first `npx usbip-qrexec` in a checkout, which installs the
// checkout into npm's cache and runs prepare there): compile with tsc only when a source is
// newer than the last build, so an up-to-date tree starts at once. `npm run build` (--force)
// always builds.
import { execFileSync } from "node:child_process";
import { readdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const stamp = path.join(root, "dist/.built");
const mtime = (f) => {
  try {
    return statSync(f).mtimeMs;
  } catch {
    return -1;
  }
};
function newest(dir) {
  let m = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name === "dist" || e.name.startsWith(".")) continue;
    const f = path.join(dir, e.name);
    if (e.isDirectory()) m = Math.max(m, newest(f));
    else if (e.name.endsWith(".ts")) m = Math.max(m, mtime(f));
  }
  return m;
}
const built = mtime(stamp);
const force = process.argv.includes("--force");
if (force || built < 0 || built < Math.max(newest(root), mtime(path.join(root, "tsconfig.json")), mtime(path.join(root, "package.json")))) {
  try {
    execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", path.join(root, "tsconfig.json")], { stdio: "inherit" });
  } catch {
    process.exit(1); // tsc printed its errors
  }
  // the layer rules (docs/ARCHITECTURE.md) fail the build like a type error
  const { violations } = await import("./check-layers.mjs");
  const broken = violations();
  for (const line of broken) process.stderr.write(`layer rule broken: ${line}\n`);
  if (broken.length) process.exit(1);
  // the relay threads' entries as one file each (scripts/bundle.mjs), over what tsc wrote;
  // without esbuild (a production install) tsc's modules serve as they are
  const { bundle, THREAD_ENTRIES } = await import("./bundle.mjs");
  for (const e of THREAD_ENTRIES) {
    try {
      await bundle(`${e}.ts`, path.join(root, "dist", `${e}.js`), { sourcemap: true });
    } catch (err) {
      if (err?.code !== "ERR_MODULE_NOT_FOUND") throw err;
    }
  }
  writeFileSync(stamp, new Date().toISOString() + "\n");
}
