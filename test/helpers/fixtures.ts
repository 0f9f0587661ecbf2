/** Test helpers: repo paths, hex fixtures with per-field comments, message normalisation. */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { contiguous, type Message } from "../../protocol/messages.js";

/** The repository root (tests run from dist/test/...). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

export function capture(name: string): Buffer {
  return readFileSync(path.join(repoRoot, "test/fixtures/captures", name));
}

/**
 * Build bytes from hex lines, each optionally followed by `// comment`. A line "zeros N"
 * stands for N zero bytes and "ascii TEXT" for the bytes of TEXT.
 */
export function hex(lines: string[]): Buffer {
  const parts: Buffer[] = [];
  for (const raw of lines) {
    const line = raw.replace(/\/\/.*$/, "").trim();
    if (line === "") continue;
    const zeros = /^zeros (\d+)$/.exec(line);
    if (zeros) {
      parts.push(Buffer.alloc(Number(zeros[1])));
      continue;
    }
    const ascii = /^ascii (.*)$/.exec(line);
    if (ascii) {
      parts.push(Buffer.from(ascii[1]!, "latin1"));
      continue;
    }
    const digits = line.replace(/\s+/g, "");
    if (!/^([0-9a-f]{2})*$/i.test(digits)) throw new Error(`bad hex fixture line: ${raw}`);
    parts.push(Buffer.from(digits, "hex"));
  }
  return Buffer.concat(parts);
}

/** A message with buffers turned into hex and payload segments joined, for deep equality. */
export function normalize(m: Message): unknown {
  const o: Record<string, unknown> = { ...m };
  if ("payload" in m) o.payload = contiguous(m.payload).toString("hex");
  if ("setup" in m) o.setup = m.setup.toString("hex");
  return o;
}

/** Split `b` at the given cut points (sorted, deduplicated, within bounds). */
export function splitAt(b: Buffer, cuts: number[]): Buffer[] {
  const pts = [...new Set(cuts.filter((c) => c > 0 && c < b.length))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of pts) {
    out.push(b.subarray(prev, c));
    prev = c;
  }
  out.push(b.subarray(prev));
  return out;
}
