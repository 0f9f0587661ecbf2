/**
 * serve --tcp in this process: one set of termination-signal handlers for the server, however
 * many import sessions come and go (each connection left three behind before), all removed
 * when a signal ends the server; closing waits for the sessions instead of sleeping.
 */
import test from "ava";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { serveTcp } from "../backend/serve-tcp.js";
import { requestImport } from "../frontend/connect-tcp.js";
import type { Logger } from "../shared/log.js";

const counts = () => (["SIGTERM", "SIGINT", "SIGHUP"] as const).map((s) => process.listenerCount(s));

test.serial("five import sessions leave the signal handlers as they were; SIGTERM ends the server and removes its own", async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-serve-signals-"));
  const img = path.join(dir, "disk.img");
  writeFileSync(img, randomBytes(64 * 1024));
  const lines: string[] = [];
  const log: Logger = { info: (m) => lines.push(m), notice: (m) => lines.push(m), warn: (m) => lines.push(m) };
  const before = counts();
  let port = 0;
  let listening: () => void = () => {};
  const up = new Promise<void>((resolve) => (listening = resolve));
  const done = serveTcp({ host: "127.0.0.1", port: 0, virtual: [`mass-storage:${img}`], devices: [], log, onListening: (p) => ((port = p), listening()) });
  await up;
  const during = counts();
  t.deepEqual(during, before.map((n) => n + 1), "one set for the server");
  for (let i = 1; i <= 5; i++) {
    const { sock } = await requestImport("127.0.0.1", port, "virtual-1");
    sock.destroy();
    // the session ends when the server sees the close; wait for its line
    for (let w = 0; w < 200 && lines.filter((l) => l.includes("session ended")).length < i; w++) await new Promise((r) => setTimeout(r, 10));
    t.is(lines.filter((l) => l.includes("session ended")).length, i, `session ${i} ended`);
    t.deepEqual(counts(), during, `after session ${i}`);
  }
  process.emit("SIGTERM", "SIGTERM");
  t.is(await done, 0);
  t.deepEqual(counts(), before, "the server's handlers are gone");
  rmSync(dir, { recursive: true, force: true });
});
