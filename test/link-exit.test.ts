/**
 * A side that refuses its peer must be able to leave while the peer keeps the link open and
 * silent. Over separate pipes (qrexec's usual link), the link once went through fs streams,
 * whose reads block in libuv's thread pool; process exit waited for that read, so a hostile
 * frontend that sent one bad message and then nothing kept the backend process alive.
 */
import test from "ava";
import { spawn } from "node:child_process";
import { closeSync, createReadStream, writeSync } from "node:fs";
import path from "node:path";
import { makePipe } from "../qrexec/pipe.js";
import { repoRoot } from "./helpers/fixtures.js";

test("export --virtual over pipes: a bad CMD from a peer that keeps its pipe open ends the export (status 2)", async (t) => {
  const toChild = makePipe();
  const fromChild = makePipe();
  const child = spawn(process.execPath, [path.join(repoRoot, "bin/usbip-qrexec.js"), "export", "--virtual", "hid-keyboard"], {
    cwd: repoRoot,
    stdio: [toChild.readFd, fromChild.writeFd, "pipe"],
  });
  closeSync(toChild.readFd);
  closeSync(fromChild.writeFd);
  let stderr = "";
  child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
  const fromIt: Buffer[] = [];
  const out = createReadStream("", { fd: fromChild.readFd });
  out.on("data", (b) => fromIt.push(b as Buffer));
  // wait for the handshake line, then send 48 bytes of an unknown URB command
  await new Promise<void>((resolve) => out.on("data", () => resolve()));
  const bad = Buffer.alloc(48);
  bad.writeUInt32BE(0x77, 0);
  writeSync(toChild.writeFd, bad);
  // the pipe to the child stays open (a silent hostile peer): the child must still exit
  const exited = await new Promise<number | null | "held">((resolve) => {
    const timer = setTimeout(() => resolve("held"), 20_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  closeSync(toChild.writeFd);
  if (exited === "held") await new Promise((r) => child.on("exit", r));
  out.destroy();
  t.not(exited, "held", "the export stayed alive until its peer closed the pipe");
  t.is(exited, 2);
  t.regex(stderr, /USBIP_ERR_UNKNOWN_COMMAND at byte 0/);
  t.regex(Buffer.concat(fromIt).toString("latin1"), /^[^\n]*\n/);
});
