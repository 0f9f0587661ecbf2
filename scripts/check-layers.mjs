#!/usr/bin/env node
// The layer rules of docs/ARCHITECTURE.md ("Layers and imports"), checked on the sources: which
// folder may import which, protocol/ free of node: modules, nothing but cli/ importing cli/.
// Run by the build (scripts/build-if-stale.mjs) and by the unit tests; prints one line per
// broken rule and exits 1.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** folder → the folders it may import besides itself (npm packages are always allowed). */
export const LAYERS = {
  protocol: [],
  usb: ["protocol"],
  shared: ["protocol"],
  trace: ["protocol", "usb", "shared"],
  relay: ["protocol", "trace", "shared"],
  device: ["protocol", "usb", "shared"],
  "kernel-glue": ["protocol", "usb", "shared"],
  qrexec: ["protocol", "shared"],
  host: ["protocol", "usb", "device", "relay", "qrexec", "shared"],
  backend: ["protocol", "usb", "device", "relay", "trace", "kernel-glue", "qrexec", "host", "shared"],
  frontend: ["protocol", "usb", "relay", "trace", "kernel-glue", "qrexec", "host", "shared"],
  fuzz: ["protocol", "usb", "shared"],
  cli: ["protocol", "usb", "shared", "trace", "relay", "device", "kernel-glue", "qrexec", "host", "backend", "frontend"],
};
/** folders with no node: imports at all (pure: no fs, net, child_process, …) */
export const PURE = ["protocol", "usb"];

function importsOf(text) {
  const out = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?\sfrom\s+"([^"]+)"|(?:^|\n)\s*import\s+"([^"]+)"|\bimport\(\s*[`"]([^`"$]+)[`"]/g)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

/** Every broken rule, as "FILE: imports SPEC (RULE)". */
export function violations(base = root) {
  const found = [];
  for (const [layer, allowed] of Object.entries(LAYERS)) {
    let files;
    try {
      files = readdirSync(path.join(base, layer)).filter((f) => f.endsWith(".ts"));
    } catch {
      continue;
    }
    for (const f of files) {
      const rel = `${layer}/${f}`;
      for (const spec of importsOf(readFileSync(path.join(base, rel), "utf8"))) {
        if (spec.startsWith("node:")) {
          if (PURE.includes(layer)) found.push(`${rel}: imports ${spec} (${layer}/ is pure: no node: modules)`);
          continue;
        }
        if (!spec.startsWith(".")) continue; // an npm package
        const target = path.relative(base, path.resolve(path.join(base, layer), spec)).split(path.sep)[0];
        if (target === layer) continue;
        if (target === "cli") found.push(`${rel}: imports ${spec} (only cli/ imports cli/)`);
        else if (!allowed.includes(target)) found.push(`${rel}: imports ${spec} (${layer}/ may import ${allowed.length ? allowed.map((a) => `${a}/`).join(", ") : "nothing outside itself"})`);
      }
    }
  }
  return found;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const v = violations();
  for (const line of v) process.stderr.write(`layer rule broken: ${line}\n`);
  process.exit(v.length ? 1 : 0);
}
