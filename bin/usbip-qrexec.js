#!/usr/bin/env node
// The CLI is written in TypeScript and compiled to dist/ by `npm install` (prepare) or `npm run build`.
import("../dist/cli/main.js").catch((e) => {
  if (e && e.code === "ERR_MODULE_NOT_FOUND") {
    process.stderr.write("usbip-qrexec: not built yet: run 'npm install' (or 'npm run build') in the package directory\n");
    process.exit(1);
  }
  throw e;
});
