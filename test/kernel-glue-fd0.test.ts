/**
 * The koffi-based waits of kernel-glue/system.ts: reading the handshake line from fd 0 without a
 * byte more (a child process with a socket or a pipe as its stdin runs readLineFromFd0 and then
 * reads what is left, to show nothing past the newline was taken), and hang-up watches that never
 * read the socket and share one poll.
 */
import test from "ava";
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { socketPair } from "../shared/socketpair.js";
import { watchHangup } from "../kernel-glue/system.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const SYSTEM = JSON.stringify(path.resolve(here, "../kernel-glue/system.js"));

interface Outcome {
  line: { bytes: string; end: string; signal?: string };
  rest: string;
}

/** Run readLineFromFd0(max, timeoutMs) in a child whose stdin is `stdin`; it prints the result and what fd 0 still held. */
function readIn(stdin: "socket" | "pipe", feed: (write: (s: string) => void, end: () => void, child: ReturnType<typeof spawn>) => void, max = 64, timeoutMs = 5000, onSignal = false): Promise<Outcome> {
  const src = `
    import { readFileSync } from "node:fs";
    const { readLineFromFd0 } = await import(${SYSTEM});
    const interrupt = new Promise((r) => process.once("SIGTERM", () => r("SIGTERM")));
    process.stdout.write("waiting\\n");
    const l = await readLineFromFd0(${max}, ${timeoutMs}, ${onSignal ? "interrupt" : "undefined"});
    let rest = "";
    if (l.end === "line" || l.end === "long") rest = readFileSync(0, "utf8");
    process.stdout.write(JSON.stringify({ line: { ...l, bytes: l.bytes.toString() }, rest }) + "\\n");
    process.exit(0);
  `;
  return (async () => {
    let child: ReturnType<typeof spawn>;
    let write: (s: string) => void;
    let end: () => void;
    if (stdin === "socket") {
      const [mine, theirs] = await socketPair();
      child = spawn(process.execPath, ["--input-type=module", "-e", src], { stdio: [theirs, "pipe", "inherit"] });
      theirs.destroy();
      write = (s) => mine.write(s);
      end = () => mine.end();
    } else {
      child = spawn(process.execPath, ["--input-type=module", "-e", src], { stdio: ["pipe", "pipe", "inherit"] });
      write = (s) => child.stdin!.write(s);
      end = () => child.stdin!.end();
    }
    let out = "";
    child.stdout!.on("data", (b: Buffer) => (out += b));
    await new Promise<void>((r) => child.stdout!.once("data", () => r()));
    feed(write, end, child);
    await new Promise((r) => child.once("close", r));
    return JSON.parse(out.split("\n")[1]!) as Outcome;
  })();
}

/** A feed that writes `text` and closes. */
const sendAll = (text: string) => (w: (s: string) => void, end: () => void) => {
  w(text);
  end();
};

test("socket: the line up to its newline, not a byte more (the rest stays for the kernel)", async (t) => {
  const r = await readIn("socket", (w, end) => {
    w("65538 4");
    setTimeout(() => {
      w("80\nCMD_SUBMIT bytes");
      end();
    }, 150);
  });
  t.deepEqual(r.line, { bytes: "65538 480\n", end: "line" });
  t.is(r.rest, "CMD_SUBMIT bytes");
});

test("pipe (cannot peek): the same, a byte at a time", async (t) => {
  const r = await readIn("pipe", sendAll("65538 480\nrest"));
  t.deepEqual(r.line, { bytes: "65538 480\n", end: "line" });
  t.is(r.rest, "rest");
});

test("EOF before a newline, a line too long, silence: eof, long (max bytes taken, no more), timeout", async (t) => {
  const eof = await readIn("socket", sendAll("655"));
  t.deepEqual(eof.line, { bytes: "655", end: "eof" });
  const long = await readIn("socket", sendAll("x".repeat(20) + "\n"), 8);
  t.deepEqual(long.line, { bytes: "xxxxxxxx", end: "long" });
  t.is(long.rest, "x".repeat(12) + "\n");
  const silent = await readIn("socket", () => {}, 64, 300);
  t.deepEqual(silent.line, { bytes: "", end: "timeout" });
});

test("a termination signal ends the wait", async (t) => {
  const r = await readIn("socket", (_w, _e, child) => setTimeout(() => child.kill("SIGTERM"), 200), 64, 10_000, true);
  t.deepEqual(r.line, { bytes: "", end: "interrupted", signal: "SIGTERM" });
});

test("watchHangup: resolves when the peer closes, without reading what was sent", async (t) => {
  const [a, b] = await socketPair();
  a.pause();
  const w = watchHangup(a);
  let done = false;
  void w.done.then(() => (done = true));
  b.write("for the kernel");
  await new Promise((r) => setTimeout(r, 200));
  t.false(done, "resolved while the peer is still there");
  b.end();
  await w.done;
  const got = await new Promise<string>((resolve) => {
    a.once("data", (x: Buffer) => resolve(x.toString()));
    a.resume();
  });
  t.is(got, "for the kernel", "the watch read the bytes");
  a.destroy();
});

test("watchHangup: 40 watches at once share the poll; each resolves with its own peer, stop() ends one", async (t) => {
  const pairs = await Promise.all(Array.from({ length: 40 }, () => socketPair()));
  const watches = pairs.map(([a]) => watchHangup(a));
  const state = watches.map(() => false);
  watches.forEach((w, i) => void w.done.then(() => (state[i] = true)));
  for (let i = 0; i < 40; i += 2) pairs[i]![1].destroy();
  await Promise.all(watches.filter((_, i) => i % 2 === 0).map((w) => w.done));
  await new Promise((r) => setTimeout(r, 100));
  t.deepEqual(state, state.map((_, i) => i % 2 === 0), "only the watches whose peer closed");
  watches[1]!.stop();
  await watches[1]!.done;
  for (let i = 3; i < 40; i += 2) pairs[i]![1].destroy();
  await Promise.all(watches.map((w) => w.done));
  for (const [a, b] of pairs) {
    a.destroy();
    b.destroy();
  }
  t.pass();
});
