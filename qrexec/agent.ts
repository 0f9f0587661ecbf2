/**
 * The qrexec agent side of a service: SIGUSR1 to $QREXEC_AGENT_PID asks for one socket on fd 0
 * for both directions (the kernel modes need it); SIGHUP to $SERVICE_ATTACH_PID tells
 * qubes.USBAttach the device is attached.
 */
import { UsbipError, RuntimeCode } from "../protocol/errors.js";

function pidFromEnv(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 1) throw new UsbipError(RuntimeCode.ENV, `${name}="${v}" is not a process id`);
  return n;
}

/** Ask the agent for a single bidirectional socket; no-op outside qrexec. */
export function requestSingleSocket(): boolean {
  const pid = pidFromEnv("QREXEC_AGENT_PID");
  if (pid === undefined) return false;
  try {
    process.kill(pid, "SIGUSR1");
  } catch (e) {
    throw new UsbipError(RuntimeCode.AGENT, `cannot signal the qrexec agent (QREXEC_AGENT_PID=${pid}): ${(e as NodeJS.ErrnoException).code}`);
  }
  return true;
}

/** Tell qubes.USBAttach (if it started us) that the attach succeeded. */
export function notifyAttached(): void {
  const pid = pidFromEnv("SERVICE_ATTACH_PID");
  if (pid === undefined) return;
  try {
    process.kill(pid, "SIGHUP");
  } catch {
    /* the service already ended */
  }
}

export interface TerminationSignal {
  promise: Promise<NodeJS.Signals>;
  dispose(): void;
}

const TERMINATION_SIGNALS: NodeJS.Signals[] = ["SIGTERM", "SIGINT", "SIGHUP"];
let latched: NodeJS.Signals | undefined;
let latching = false;

/**
 * Hold SIGTERM/SIGINT/SIGHUP from now on instead of dying of them: the first one is kept, and
 * every terminationSignal() made later resolves with it at once. A service command calls this
 * before it loads anything, so a signal in its first moments (before its own waits are set up)
 * is a clean stop with cleanup, not a death its orphan guard has to clean up after.
 */
export function latchTerminationSignals(): void {
  if (latching) return;
  latching = true;
  for (const s of TERMINATION_SIGNALS) process.on(s, (sig: NodeJS.Signals) => (latched ??= sig));
}

/** Run `body` with the termination signal `given` (the caller's), or with one made for it and disposed when it ends. */
export async function withTerminationSignal<T>(body: (signal: TerminationSignal) => Promise<T>, given?: TerminationSignal): Promise<T> {
  const signal = given ?? terminationSignal();
  try {
    return await body(signal);
  } finally {
    if (given === undefined) signal.dispose();
  }
}

/** Resolve on the first of SIGTERM, SIGINT, SIGHUP — or at once with one latched before (handlers stay installed until dispose()). */
export function terminationSignal(): TerminationSignal {
  const sigs = TERMINATION_SIGNALS;
  let handler: (s: NodeJS.Signals) => void = () => {};
  const promise = new Promise<NodeJS.Signals>((resolve) => {
    handler = (s) => resolve(s);
    if (latched !== undefined) resolve(latched);
  });
  for (const s of sigs) process.on(s, handler);
  return {
    promise,
    dispose() {
      for (const s of sigs) process.off(s, handler);
    },
  };
}
