/**
 * qrexec simulator: runs a LOCAL process and a SERVICE process connected the way
 * qrexec-client-vm connects a local program to a remote service, so whole flows run on one
 * machine. Each side has its own agent (a tiny process whose pid is that side's
 * $QREXEC_AGENT_PID).
 *
 * --link socket (default): fd 0 of each side is a Unix stream socket, fd 1 a separate stream.
 *   Until the side sends SIGUSR1 to its agent, the simulator reads that side's output from fd 1;
 *   from then on it also reads fd 0 ("one socket for both directions"), which is what the
 *   kernel modes hand to usbip-host / vhci-hcd.
 * --link pipes: fd 0 and fd 1 are plain pipes; SIGUSR1 is noted and changes nothing.
 * --link direct: one socketpair, each side gets its end as fd 0 and fd 1; the simulator copies
 *   nothing (the fastest link there can be: what a benchmark of the layers above wants).
 *
 * When a side's process exits, its end of the link is closed (the kernel, if it holds that
 * side's socket, sees EOF) and the other side gets EOF on its input, as when qrexec tears a
 * connection down.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type net from "node:net";
import type { Readable, Writable } from "node:stream";
import { closeSync, createReadStream, createWriteStream } from "node:fs";
import { makePipe } from "./pipe.js";
import { socketFd, socketPair } from "../shared/socketpair.js";
import type { Logger } from "../shared/log.js";

export type LinkMode = "socket" | "pipes" | "direct";

interface Side {
  name: "local" | "service";
  child: ChildProcess;
  agent: ChildProcess;
  /** what the child writes, as seen by the simulator */
  outputs: Readable[];
  /** where the simulator writes the child's input */
  input: Writable;
  /** the simulator's end of the child's fd 0 socket (socket mode) */
  sock: net.Socket | undefined;
  /** the child's fd 1 as read by the simulator */
  output: Readable;
  exit: Promise<number>;
  closed: boolean;
}

// The agent stub, a /bin/sh script (it starts in a fraction of Node's time, and a simulated
// flow starts two). Writes "r" once its traps are set, then "1" per SIGUSR1. Ends on SIGTERM or
// when its stdin (a pipe from us) reaches EOF: a simulator killed with SIGKILL leaves no agent
// behind. The shell waits in `wait`, which a trapped signal interrupts (POSIX), for a `cat`
// draining the saved stdin (an asynchronous command's own stdin is /dev/null). $0 names it in ps.
const AGENT_SH = [
  "exec 3<&0",
  "cat <&3 >/dev/null &",
  "c=$!",
  "trap 'printf 1' USR1",
  "trap 'kill $c 2>/dev/null; exit 0' TERM",
  "printf r",
  "while :; do wait $c; [ $? -gt 128 ] || exit 0; done",
].join("\n");

export async function runQrexecSim(local: string[], service: string[], link: LinkMode, log: Logger): Promise<number> {
  if (link === "direct") return runDirect(local, service, log);
  const sides: Side[] = await Promise.all([startSide("local", local, link, log), startSide("service", service, link, log)]);
  const [a, b] = sides as [Side, Side];
  pump(a, b, log);
  pump(b, a, log);
  const forward = (sig: NodeJS.Signals) => {
    for (const s of sides) s.child.kill(sig);
  };
  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(sig, () => forward(sig));
  const codes = await Promise.all(sides.map(async (s) => {
    const code = await s.exit;
    closeSide(s, log);
    // the other side's input ends: EOF on its fd 0
    const other = s === a ? b : a;
    other.input.end();
    return code;
  }));
  for (const s of sides) s.agent.kill("SIGTERM");
  const [lc, sc] = codes as [number, number];
  return sc !== 0 ? sc : lc;
}

async function startAgent(): Promise<ChildProcess> {
  const agent = spawn("/bin/sh", ["-c", AGENT_SH, "usbip-qrexec-agent"], { stdio: ["pipe", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    agent.stdout!.once("data", () => resolve());
    agent.once("error", reject);
    agent.once("exit", () => reject(new Error("the agent stub exited")));
  });
  return agent;
}

function childExit(child: ChildProcess, name: string, cmd: string, log: Logger): Promise<number> {
  return new Promise<number>((resolve) => {
    child.on("error", (e) => {
      log.warn(`${name}: cannot run ${cmd}: ${e.message}`);
      resolve(127);
    });
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 + (signalNumber(signal) ?? 0) : 1)));
  });
}

async function startSide(name: "local" | "service", argv: string[], link: LinkMode, log: Logger): Promise<Side> {
  const agent = await startAgent();
  const env = { ...process.env, QREXEC_AGENT_PID: String(agent.pid), QREXEC_REMOTE_DOMAIN: name === "local" ? "sim-backend" : "sim-frontend" };
  const [cmd, ...args] = argv as [string, ...string[]];
  let child: ChildProcess;
  let sock: net.Socket | undefined;
  let pipeIn: Writable | undefined;
  let pipeOut: Readable | undefined;
  if (link === "socket") {
    const [mine, theirs] = await socketPair();
    child = spawn(cmd, args, { stdio: [theirs, "pipe", "inherit"], env });
    theirs.destroy(); // the child has its own copy
    sock = mine;
    sock.pause(); // read fd 0's output only after SIGUSR1
  } else {
    const toChild = makePipe();
    const fromChild = makePipe();
    child = spawn(cmd, args, { stdio: [toChild.readFd, fromChild.writeFd, "inherit"], env });
    closeSync(toChild.readFd);
    closeSync(fromChild.writeFd);
    pipeIn = createWriteStream("", { fd: toChild.writeFd });
    pipeOut = createReadStream("", { fd: fromChild.readFd });
  }
  const exit = childExit(child, name, cmd, log);
  const output = pipeOut ?? child.stdout!;
  const side: Side = { name, child, agent, outputs: [output], input: sock ?? pipeIn!, sock, output, exit, closed: false };
  agent.stdout!.on("data", () => {
    if (link === "socket" && sock !== undefined && !side.outputs.includes(sock)) {
      log.info(`${name}: SIGUSR1: fd 0 now carries both directions`);
      side.outputs.push(sock);
      sock.resume();
    } else if (link === "pipes") log.info(`${name}: SIGUSR1 ignored (--link pipes)`);
  });
  return side;
}

/** --link direct: both sides on one socketpair, nothing copied by us. */
async function runDirect(local: string[], service: string[], log: Logger): Promise<number> {
  const agents = await Promise.all([startAgent(), startAgent()]);
  const ends = await socketPair();
  // Spawn both children and close our copies in one synchronous run: our handles would
  // otherwise read (in the next event-loop turn) what one child writes for the other.
  const children: ChildProcess[] = [];
  const exits: Promise<number>[] = [];
  for (const [i, name, argv] of [[0, "local", local], [1, "service", service]] as const) {
    const env = { ...process.env, QREXEC_AGENT_PID: String(agents[i]!.pid), QREXEC_REMOTE_DOMAIN: name === "local" ? "sim-backend" : "sim-frontend" };
    const [cmd, ...args] = argv as [string, ...string[]];
    // the same socket as fd 0 and fd 1, by fd number (Node maps a repeated stream object oddly)
    const fd = socketFd(ends[i]!);
    const child = spawn(cmd, args, { stdio: [fd, fd, "inherit"], env });
    children.push(child);
    exits.push(childExit(child, name, cmd, log));
  }
  for (const e of ends) e.destroy(); // each child has its own copy: EOF comes when one exits
  const forward = (sig: NodeJS.Signals) => {
    for (const c of children) c.kill(sig);
  };
  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(sig, () => forward(sig));
  const [lc, sc] = (await Promise.all(exits)) as [number, number];
  for (const a of agents) a.kill("SIGTERM");
  return sc !== 0 ? sc : lc;
}


/** Copy what `from` writes to the input of `to`, with backpressure. */
function pump(from: Side, to: Side, log: Logger): void {
  const attach = (r: Readable) => {
    r.on("data", (chunk: Buffer) => {
      if (to.closed) return;
      if (!to.input.write(chunk)) {
        r.pause();
        to.input.once("drain", () => r.resume());
      }
    });
    r.on("error", (e) => log.info(`${from.name}: ${e.message}`));
    // EOF of the side's output stream (fd 0 in socket mode, fd 1 with pipes) ends the other's input
    if (r === (from.sock ?? from.output)) r.on("end", () => to.input.end());
  };
  for (const r of from.outputs) attach(r);
  // fd 0 joins the outputs on SIGUSR1: watch for it
  const push = from.outputs.push.bind(from.outputs);
  from.outputs.push = (...rs: Readable[]) => {
    for (const r of rs) attach(r);
    return push(...rs);
  };
  to.input.on("error", (e) => log.info(`${to.name} input: ${e.message}`));
}

function closeSide(s: Side, log: Logger): void {
  if (s.closed) return;
  s.closed = true;
  log.info(`${s.name} exited: closing its end of the link`);
  s.sock?.destroy();
  for (const r of s.outputs) r.destroy();
}

function signalNumber(sig: NodeJS.Signals): number | undefined {
  const table: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15, SIGUSR1: 10, SIGPIPE: 13 };
  return table[sig];
}
