/** Reading the recorded streams `decode` and `pcap` take: FILE, or "-" for standard input. */
import { UsbipError, RuntimeCode } from "../protocol/errors.js";
import { readFile } from "node:fs/promises";
import { UsageError } from "./errors.js";

const why = (code: string | undefined) => (code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a directory" : code === "EACCES" ? "permission denied" : (code ?? "EIO"));

async function readStdin(): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Read every path ("-" at most once: stdin); one-line errors naming the file. */
export async function readInputs(cmd: string, paths: string[]): Promise<Buffer[]> {
  if (paths.filter((p) => p === "-").length > 1) throw new UsageError(`${cmd}: only one of the inputs can be "-" (standard input)`);
  return Promise.all(
    paths.map(async (p) => {
      if (p === "-") return readStdin();
      try {
        return await readFile(p);
      } catch (e) {
        throw new UsbipError(RuntimeCode.INPUT, `${cmd}: cannot read ${p}: ${why((e as NodeJS.ErrnoException).code)}`);
      }
    }),
  );
}

/** Both streams empty: most likely the wrong files. */
export function refuseEmpty(cmd: string, paths: string[], inputs: Buffer[]): void {
  if (inputs.every((b) => b.length === 0)) throw new UsbipError(RuntimeCode.INPUT, `${cmd}: the capture is empty (${paths.map((p) => (p === "-" ? "stdin" : p)).join(" and ")} hold no bytes)`);
}
