/**
 * The link to a USB/IP service for the userspace host: either our own fd 0/1 (run as the local
 * command of qrexec-client-vm or qrexec-sim) or a SERVICE command we spawn, its stdin/stdout
 * being the link. The handshake line is read first.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import type { Handshake } from "../protocol/messages.js";
import { openLink } from "../qrexec/link.js";
import { readHandshake } from "../qrexec/read-handshake.js";
import { UsbipError, RuntimeCode } from "../protocol/errors.js";

export interface ServiceLink {
  input: Readable;
  output: Writable;
  handshake: Handshake;
  /** bytes read after the handshake line */
  rest: Buffer;
  /** end the link and wait for the service (if we spawned it) to exit; `now`: stop it at once (SIGTERM) */
  close(now?: boolean): Promise<number | null>;
}

export async function connectService(service: string[] | "stdio", timeoutMs = 30_000, interrupt?: Promise<NodeJS.Signals>): Promise<ServiceLink> {
  let child: ChildProcess | undefined;
  let input: Readable;
  let output: Writable;
  if (service === "stdio") ({ input, output } = openLink());
  else {
    const [cmd, ...args] = service as [string, ...string[]];
    child = spawn(cmd, args, { stdio: ["pipe", "pipe", "inherit"] });
    const c = child;
    await new Promise<void>((resolve, reject) => {
      c.once("spawn", () => resolve());
      c.once("error", (e) => reject(new UsbipError(RuntimeCode.SERVICE, `cannot run ${cmd}: ${e.message}`)));
    });
    input = child.stdout!;
    output = child.stdin!;
    output.on("error", () => {}); // EPIPE when the service is gone: seen as EOF on input
  }
  const exited = child ? new Promise<number | null>((r) => child!.once("exit", (code) => r(code))) : Promise.resolve(null);
  const { handshake, rest } = await readHandshake(input, timeoutMs, interrupt).catch(async (e: Error) => {
    child?.kill("SIGTERM");
    throw e;
  });
  return {
    input,
    output,
    handshake,
    rest,
    async close(now = false) {
      output.end();
      if (!child) return null;
      const t = setTimeout(() => child!.kill("SIGTERM"), now ? 0 : 5000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}
