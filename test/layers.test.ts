/**
 * The layer rules (scripts/check-layers.mjs, docs/ARCHITECTURE.md): the tree keeps them, and the
 * checker finds each kind of break in a tree made to break them.
 */
import test from "ava";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const script = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../scripts/check-layers.mjs");
const { violations, LAYERS } = (await import(script)) as { violations: (base?: string) => string[]; LAYERS: Record<string, string[]> };

test("the tree keeps the layer rules", (t) => {
  t.deepEqual(violations(), []);
});

test("the checker finds node: in protocol/, backend <-> frontend, imports of cli/, and dynamic imports", (t) => {
  const base = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-layers-"));
  try {
    const put = (f: string, text: string) => {
      mkdirSync(path.dirname(path.join(base, f)), { recursive: true });
      writeFileSync(path.join(base, f), text);
    };
    put("protocol/a.ts", 'import { readFileSync } from "node:fs";\nimport { x } from "./b.js";\n');
    put("backend/b.ts", 'import {\n  importRelay,\n} from "../frontend/import-relay.js";\n');
    put("frontend/c.ts", 'const m = await import("../backend/export-kernel.js");\n');
    put("relay/d.ts", 'import type { Logger } from "../cli/main.js";\nimport net from "node:net";\n');
    put("qrexec/e.ts", 'export { Vhci } from "../kernel-glue/vhci.js";\n');
    put("cli/f.ts", 'import { exportKernel } from "../backend/export-kernel.js";\nimport { x } from "../protocol/a.js";\n');
    const v = violations(base);
    t.is(v.length, 5, v.join("\n"));
    t.true(v.some((l) => l.startsWith("protocol/a.ts: imports node:fs (protocol/ is pure")));
    t.true(v.some((l) => l.startsWith("backend/b.ts: imports ../frontend/import-relay.js")));
    t.true(v.some((l) => l.startsWith("frontend/c.ts: imports ../backend/export-kernel.js")));
    t.true(v.some((l) => l.startsWith("relay/d.ts: imports ../cli/main.js (only cli/ imports cli/)")));
    t.true(v.some((l) => l.startsWith("qrexec/e.ts: imports ../kernel-glue/vhci.js")));
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test("backend and frontend never import each other; protocol imports nothing outside itself", (t) => {
  t.false(LAYERS.backend!.includes("frontend"));
  t.false(LAYERS.frontend!.includes("backend"));
  t.deepEqual(LAYERS.protocol, []);
  t.false(Object.entries(LAYERS).some(([k, v]) => k !== "cli" && v.includes("cli")));
});
