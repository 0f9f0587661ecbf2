// One ESM bundle of an entry module (esbuild), as the packages ship the CLI and as the relay
// threads' entries are loaded: a worker thread parses one file instead of resolving and reading
// every module of the relay (measured: 55 ms instead of 80 ms to the first URB through, on the
// host; under emulation each worker start is paid again, in the attach time). node-usb and
// koffi stay outside (native addons, resolved from node_modules at run time).
import path from "node:path";
import { fileURLToPath } from "node:url";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The relay threads' entries (relay/relay-thread.ts), by their path below dist/. */
export const THREAD_ENTRIES = ["frontend/import-relay-thread", "backend/export-relay-thread"];

export async function bundle(from, outfile, { sourcemap = false } = {}) {
  const { build } = await import("esbuild");
  await build({
    entryPoints: [path.join(root, from)],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: ["usb", "koffi"],
    banner: { js: 'import { createRequire as __usbipQrexecCreateRequire } from "node:module"; const require = __usbipQrexecCreateRequire(import.meta.url);' },
    sourcemap,
    logLevel: "warning",
    outfile,
  });
}
