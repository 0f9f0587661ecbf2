/**
 * Time-boxed mutation fuzzer over both stream decoders and the handshake parser, seeded from
 * the real kernel captures. Usage: node dist/fuzz/run.js [--seconds N] [--seed S]
 * (npm run fuzz: 60 s). Prints one TAP line per target. A failing input is written to
 * fuzz/findings/ and should be copied to fuzz/regressions/, which the tests replay.
 *
 * Coverage guidance: @jazzer.js/core does not run here (its 4.x prebuilt addon needs glibc
 * 2.38, Debian 12 has 2.36; 2.x downloads its addon from GitHub at install time). Instead,
 * inputs that reach a new outcome (error code × phase × last message kinds) join the corpus.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { OracleFailure, runOne, type Target } from "./oracle.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const { values } = parseArgs({ options: { seconds: { type: "string" }, seed: { type: "string" } } });
const seconds = Number(values.seconds ?? process.env.FUZZ_SECONDS ?? 60);
let state = Number(values.seed ?? Date.now()) >>> 0 || 1;

function rnd(n: number): number {
  // xorshift32: reproducible from --seed
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return n <= 0 ? 0 : state % n;
}

const cap = (n: string) => readFileSync(path.join(root, "test/fixtures/captures", n));
const c2 = cap("tcp-2.client-to-server.bin");
const s2 = cap("tcp-2.server-to-client.bin");
const hs = Buffer.from("65538 480\n");

interface Seed {
  target: Target;
  phase: string;
  bytes: Buffer;
  context: Buffer;
  /** where the context comes from ("capture-file@start"), recorded with findings */
  contextRef?: string;
}
const seeds: Seed[] = [
  { target: "client", phase: "op", bytes: c2, context: Buffer.alloc(0) },
  { target: "client", phase: "op", bytes: cap("tcp-1.client-to-server.bin"), context: Buffer.alloc(0) },
  { target: "client", phase: "urb", bytes: c2.subarray(40), context: Buffer.alloc(0) },
  { target: "server", phase: "op", bytes: s2.subarray(0, 64 * 1024), context: c2, contextRef: "tcp-2.client-to-server.bin@0" },
  { target: "server", phase: "op", bytes: cap("tcp-1.server-to-client.bin"), context: cap("tcp-1.client-to-server.bin"), contextRef: "tcp-1.client-to-server.bin@0" },
  { target: "server", phase: "urb", bytes: s2.subarray(320, 320 + 32 * 1024), context: c2.subarray(40), contextRef: "tcp-2.client-to-server.bin@40" },
  { target: "server", phase: "handshake", bytes: Buffer.concat([hs, s2.subarray(320, 320 + 8 * 1024)]), context: c2.subarray(40), contextRef: "tcp-2.client-to-server.bin@40" },
  { target: "handshake", phase: "-", bytes: Buffer.from("65538 480 reserved\n"), context: Buffer.alloc(0) },
];

const INTERESTING = [0, 1, 2, 3, 4, 15, 16, 0x7f, 0x80, 0xff, 0x400, 0x401, 0xffff, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

function mutate(s: Seed): Buffer {
  let b = Buffer.from(s.bytes);
  const rounds = 1 + rnd(4);
  for (let r = 0; r < rounds; r++) {
    if (b.length === 0) b = Buffer.from([rnd(256)]);
    switch (rnd(7)) {
      case 0: // flip a byte
        { const i = rnd(b.length); b[i] = b[i]! ^ (1 + rnd(255)); }
        break;
      case 1: {
        // an interesting u32 at a header-aligned word
        const at = rnd(Math.max(1, b.length - 4)) & ~3;
        if (at + 4 <= b.length) b.writeUInt32BE(INTERESTING[rnd(INTERESTING.length)]!, at);
        break;
      }
      case 2: // truncate
        b = b.subarray(0, rnd(b.length + 1));
        break;
      case 3: {
        // delete a range
        const a = rnd(b.length);
        b = Buffer.concat([b.subarray(0, a), b.subarray(a + rnd(64))]);
        break;
      }
      case 4: {
        // duplicate a range (replays a message: duplicate seqnums, answered twice)
        const a = rnd(b.length);
        const e = Math.min(b.length, a + 1 + rnd(200));
        b = Buffer.concat([b.subarray(0, e), b.subarray(a, e), b.subarray(e)]);
        break;
      }
      case 5: {
        // insert random bytes
        const a = rnd(b.length + 1);
        const ins = Buffer.alloc(1 + rnd(16));
        for (let i = 0; i < ins.length; i++) ins[i] = rnd(256);
        b = Buffer.concat([b.subarray(0, a), ins, b.subarray(a)]);
        break;
      }
      default: {
        // splice in a piece of another seed of the same target
        const other = seeds[rnd(seeds.length)]!;
        if (other.target !== s.target || other.bytes.length === 0) break;
        const a = rnd(other.bytes.length);
        const piece = other.bytes.subarray(a, a + 1 + rnd(96));
        const at = rnd(b.length + 1);
        b = Buffer.concat([b.subarray(0, at), piece, b.subarray(at)]);
      }
    }
  }
  return b;
}

const corpus = new Map<Target, Seed[]>();
for (const s of seeds) corpus.set(s.target, [...(corpus.get(s.target) ?? []), s]);
const seen = new Set<string>();
const stats = new Map<Target, { execs: number; features: number; failures: number }>();
for (const t of corpus.keys()) stats.set(t, { execs: 0, features: 0, failures: 0 });

const deadline = Date.now() + seconds * 1000;
const targets = [...corpus.keys()];
let failure: { target: Target; file: string; message: string } | undefined;
while (Date.now() < deadline && failure === undefined) {
  for (let i = 0; i < 50; i++) {
    const target = targets[rnd(targets.length)]!;
    const pool = corpus.get(target)!;
    const base = pool[rnd(pool.length)]!;
    const input = mutate(base);
    const cuts = Array.from({ length: rnd(4) }, () => rnd(input.length + 1));
    const st = stats.get(target)!;
    st.execs++;
    try {
      const { feature } = runOne(target, input, cuts, base.context, base.phase);
      if (!seen.has(feature)) {
        seen.add(feature);
        st.features++;
        if (pool.length < 400) pool.push({ ...base, bytes: input });
      }
    } catch (e) {
      if (!(e instanceof OracleFailure)) throw e;
      st.failures++;
      const dir = path.join(root, "fuzz/findings");
      mkdirSync(dir, { recursive: true });
      const name = `${target}-${base.phase}-${createHash("sha1").update(input).digest("hex").slice(0, 12)}`;
      writeFileSync(path.join(dir, `${name}.bin`), input);
      writeFileSync(path.join(dir, `${name}.json`), JSON.stringify({ target, phase: base.phase, cuts, context: base.contextRef ?? "", message: e.message.split("\n")[0], expect: "(fill in the outcome once fixed)" }, null, 1));
      failure = { target, file: path.join("fuzz/findings", `${name}.bin`), message: e.message.split("\n")[0]! };
      break;
    }
  }
}

let n = 0;
for (const [t, st] of stats) {
  n++;
  const line = `${t} decoder: ${st.execs} inputs, ${st.features} distinct outcomes, ${st.failures} failures (${seconds} s budget)`;
  console.log(`${st.failures === 0 ? "ok" : "not ok"} ${n} - fuzz ${line}`);
}
if (failure) console.log(`# finding: ${failure.file}: ${failure.message}`);
console.log(`1..${n}`);
process.exitCode = failure ? 1 : 0;
