/**
 * The fuzzing relay's mutation engine: seeded, field-aware mutations of one whole encoded USB/IP
 * message on its way to a kernel (RET_* toward vhci-hcd, CMD_* toward usbip-host). Pure: the
 * caller hands in the message's bytes and what it knows of it, and sends what comes back.
 *
 * At most one mutation per message, with probability `rate`, the field drawn from those enabled
 * that the message has. Wire facts (usbip_header, big-endian words; see protocol/urb-header.ts):
 *   0x04 seqnum  0x0c direction  0x10 ep  0x14 status (RET) / transfer_flags (CMD_SUBMIT)
 *   0x18 actual_length (RET_SUBMIT) / transfer_buffer_length (CMD_SUBMIT)  0x1c start_frame
 *   0x20 number_of_packets  0x24 error_count (RET_SUBMIT)
 *   iso descriptors (16 bytes: offset, length, actual_length, status) after the payload.
 * Every mutation is recorded (message index, seqnum, field, old → new), and a recorded list can be
 * replayed exactly (`plan`), or any part of it: what shrinking a finding needs.
 */
import { ISO_DESCRIPTOR_SIZE, URB_HEADER_SIZE } from "../protocol/constants.js";
import { UsageError } from "../protocol/errors.js";
import { mulberry32 } from "../protocol/prng.js";

export const FUZZ_FIELDS = ["status", "actual_length", "number_of_packets", "iso", "start_frame", "error_count", "seqnum", "ep", "direction", "transfer_flags", "truncate", "payload", "duplicate", "drop", "descriptor"] as const;
export type FuzzField = (typeof FUZZ_FIELDS)[number];

export interface FuzzSpec {
  seed: number;
  /** share of the messages mutated, 0..1 */
  rate: number;
  fields: readonly FuzzField[];
}

/** What the mutator knows of the message besides its bytes. */
export interface MessageFacts {
  kind: "CMD_SUBMIT" | "RET_SUBMIT" | "CMD_UNLINK" | "RET_UNLINK";
  /** payload bytes after the 48-byte header (before any iso descriptors) */
  payloadLength: number;
  /** iso descriptors after the payload */
  packets: number;
  /** the setup packet of the control URB this answers (RET_SUBMIT on ep 0), if known */
  setup?: Buffer;
}

export interface Mutation {
  /** the message's index among those the mutator saw (0-based) */
  n: number;
  seqnum: number;
  field: FuzzField;
  /** what was there, and what was put there ("0x…" words, "cut at N", "byte I: 0xAA") */
  from: string;
  to: string;
}

/** A mutation as the relays log it: "fuzz: message N (seqnum S) FIELD: FROM -> TO". */
export function formatMutation(m: Mutation): string {
  return `fuzz: message ${m.n} (seqnum ${m.seqnum}) ${m.field}: ${m.from} -> ${m.to}`;
}

/** The mutations in a log (any other lines skipped), for replaying them (--fuzz-replay). */
export function parseMutations(text: string): Mutation[] {
  const out: Mutation[] = [];
  for (const line of text.split("\n")) {
    const m = /fuzz: message (\d+) \(seqnum (\d+)\) (\w+): (.*) -> (.*)$/.exec(line);
    if (m === null || !(FUZZ_FIELDS as readonly string[]).includes(m[3]!)) continue;
    out.push({ n: Number(m[1]), seqnum: Number(m[2]), field: m[3] as FuzzField, from: m[4]!, to: m[5]! });
  }
  return out;
}

/** "SEED[,rate=R][,fields=a+b+…]": the --fuzz argument. */
export function parseFuzzSpec(text: string): FuzzSpec {
  const [seedText, ...opts] = text.split(",");
  if (!/^\d{1,10}$/.test(seedText ?? "") || Number(seedText) > 0xffffffff) throw new UsageError(`--fuzz: the seed must be a number 0..4294967295, not "${seedText}"`);
  const spec: FuzzSpec = { seed: Number(seedText), rate: 0.05, fields: FUZZ_FIELDS };
  for (const o of opts) {
    const [k, v = ""] = o.split("=", 2) as [string, string?];
    if (k === "rate") {
      const r = Number(v);
      if (v === "" || !Number.isFinite(r) || r < 0 || r > 1) throw new UsageError(`--fuzz: rate must be 0..1, not "${v}"`);
      spec.rate = r;
    } else if (k === "fields") {
      const fs = v.split("+");
      const bad = fs.filter((f) => !(FUZZ_FIELDS as readonly string[]).includes(f));
      if (v === "" || bad.length > 0) throw new UsageError(`--fuzz: unknown field${bad.length > 1 ? "s" : ""} ${bad.join(", ") || '""'} (fields: ${FUZZ_FIELDS.join(", ")})`);
      spec.fields = fs as FuzzField[];
    } else throw new UsageError(`--fuzz: unknown option "${k}" (rate=R, fields=a+b)`);
  }
  return spec;
}

const hex = (v: number) => `0x${(v >>> 0).toString(16)}`;

/** The word fields: their header offset, and the kinds of message that carry them. */
const WORDS: Partial<Record<FuzzField, { at: number; kinds: readonly MessageFacts["kind"][] }>> = {
  status: { at: 0x14, kinds: ["RET_SUBMIT", "RET_UNLINK"] },
  transfer_flags: { at: 0x14, kinds: ["CMD_SUBMIT"] },
  actual_length: { at: 0x18, kinds: ["RET_SUBMIT", "CMD_SUBMIT"] },
  start_frame: { at: 0x1c, kinds: ["RET_SUBMIT", "CMD_SUBMIT"] },
  number_of_packets: { at: 0x20, kinds: ["RET_SUBMIT", "CMD_SUBMIT"] },
  error_count: { at: 0x24, kinds: ["RET_SUBMIT"] },
  seqnum: { at: 0x04, kinds: ["RET_SUBMIT", "RET_UNLINK", "CMD_SUBMIT", "CMD_UNLINK"] },
  direction: { at: 0x0c, kinds: ["RET_SUBMIT", "RET_UNLINK", "CMD_SUBMIT", "CMD_UNLINK"] },
  ep: { at: 0x10, kinds: ["RET_SUBMIT", "RET_UNLINK", "CMD_SUBMIT", "CMD_UNLINK"] },
};

export class Mutator {
  private readonly rng: () => number;
  private n = 0;
  readonly log: Mutation[] = [];
  private readonly plan: Map<number, Mutation> | undefined;

  /**
   * `spec` draws mutations from its seed; `plan` (a recorded list, or part of one) replays
   * exactly those instead, at the same message indexes.
   */
  constructor(
    readonly spec: FuzzSpec,
    o: { plan?: readonly Mutation[]; onMutation?: (m: Mutation) => void } = {},
  ) {
    this.rng = mulberry32(spec.seed);
    this.plan = o.plan ? new Map(o.plan.map((m) => [m.n, m])) : undefined;
    this.onMutation = o.onMutation;
  }
  private readonly onMutation: ((m: Mutation) => void) | undefined;

  /** Messages seen so far. */
  get seen(): number {
    return this.n;
  }

  /** The message `wire` (header, payload, iso descriptors) as it goes on: 0, 1 or 2 buffers. */
  mutate(wire: Buffer, facts: MessageFacts): Buffer[] {
    const n = this.n++;
    let m: Mutation | undefined;
    let out: Buffer[];
    if (this.plan !== undefined) {
      const p = this.plan.get(n);
      if (p === undefined) return [wire];
      [out, m] = this.apply(wire, facts, n, p.field, p);
    } else {
      // the draws happen for every message, so a message's fate does not depend on the fields
      // the ones before it had
      const roll = this.rng();
      const pick = this.rng();
      const fields = this.spec.fields.filter((f) => applies(f, facts, wire));
      if (roll >= this.spec.rate || fields.length === 0) return [wire];
      [out, m] = this.apply(wire, facts, n, fields[Math.floor(pick * fields.length)]!);
    }
    this.log.push(m);
    this.onMutation?.(m);
    return out;
  }

  /** A value for a word: the boundaries, neighbours of the old one, or random bits. */
  private word(old: number): number {
    const choices = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, old + 1, old - 1, old * 2 + 1, Math.floor(this.rng() * 0x100000000)];
    let v = choices[Math.floor(this.rng() * choices.length)]! >>> 0;
    if (v === old >>> 0) v = (v ^ 0x80000000) >>> 0;
    return v;
  }

  private apply(wire: Buffer, f: MessageFacts, n: number, field: FuzzField, replay?: Mutation): [Buffer[], Mutation] {
    const b = Buffer.from(wire);
    const seqnum = wire.readUInt32BE(4);
    const record = (from: string, to: string): Mutation => ({ n, seqnum, field, from, to });
    const word = WORDS[field];
    if (word !== undefined) {
      const old = b.readUInt32BE(word.at);
      const v = replay ? Number(replay.to) : this.word(old);
      b.writeUInt32BE(v >>> 0, word.at);
      return [[b], record(hex(old), hex(v))];
    }
    switch (field) {
      case "iso": {
        // one descriptor word: offset, length or actual_length of packet i
        const i = replay ? Number(/packet (\d+)/.exec(replay.to)![1]) : Math.floor(this.rng() * f.packets);
        const w = replay ? Number(/word (\d)/.exec(replay.to)![1]) : Math.floor(this.rng() * 3);
        const at = URB_HEADER_SIZE + f.payloadLength + i * ISO_DESCRIPTOR_SIZE + 4 * w;
        const old = b.readUInt32BE(at);
        const v = replay ? Number(/= (0x[0-9a-f]+)/.exec(replay.to)![1]) : this.word(old);
        b.writeUInt32BE(v >>> 0, at);
        return [[b], record(`packet ${i} word ${w} = ${hex(old)}`, `packet ${i} word ${w} = ${hex(v)}`)];
      }
      case "truncate": {
        const cut = replay ? Number(/cut at (\d+)/.exec(replay.to)![1]) : Math.floor(this.rng() * wire.length);
        return [[b.subarray(0, cut)], record(`${wire.length} bytes`, `cut at ${cut}`)];
      }
      case "payload":
      case "descriptor": {
        const at = replay ? Number(/byte (\d+)/.exec(replay.to)![1]) : field === "payload" ? URB_HEADER_SIZE + Math.floor(this.rng() * f.payloadLength) : URB_HEADER_SIZE + descriptorByte(b.subarray(URB_HEADER_SIZE, URB_HEADER_SIZE + f.payloadLength), this.rng);
        const old = b[at]!;
        let v = replay ? Number(/= (0x[0-9a-f]+)/.exec(replay.to)![1]) : [0, 1, 0xff, 0x80, old + 1, old - 1, Math.floor(this.rng() * 256)][Math.floor(this.rng() * 7)]! & 0xff;
        if (!replay && v === old) v ^= 0x80;
        b[at] = v;
        return [[b], record(`byte ${at} = ${hex(old)}`, `byte ${at} = ${hex(v)}`)];
      }
      case "duplicate":
        return [[b, Buffer.from(b)], record("once", "twice")];
      case "drop":
        return [[], record("sent", "dropped")];
      default:
        throw new Error(`unhandled fuzz field ${field}`);
    }
  }
}

/** Whether `field` can be mutated in this message. */
function applies(field: FuzzField, f: MessageFacts, wire: Buffer): boolean {
  const word = WORDS[field];
  if (word !== undefined) return word.kinds.includes(f.kind);
  switch (field) {
    case "iso":
      return f.packets > 0 && wire.length >= URB_HEADER_SIZE + f.payloadLength + f.packets * ISO_DESCRIPTOR_SIZE;
    case "payload":
      return f.payloadLength > 0;
    case "descriptor":
      // an answer to GET_DESCRIPTOR (bmRequestType 0x80, bRequest 6) with data
      return f.kind === "RET_SUBMIT" && f.payloadLength > 1 && f.setup !== undefined && f.setup[0] === 0x80 && f.setup[1] === 6;
    default:
      return true;
  }
}

/**
 * A byte of a descriptor answer worth changing, for the class drivers' parsers: bLength or
 * bDescriptorType of the first descriptor, wTotalLength or bNumInterfaces of a configuration,
 * a later descriptor's bLength, an interface's bNumEndpoints, an endpoint's wMaxPacketSize.
 */
function descriptorByte(d: Buffer, rng: () => number): number {
  const picks = [0, 1];
  if (d[1] === 2 && d.length >= 5) picks.push(2, 3, 4);
  for (let p = d[0] ?? 0; p > 0 && p + 1 < d.length; p += d[p]!) {
    if (d[p]! < 2) break;
    picks.push(p);
    if (d[p + 1] === 4 && p + 4 < d.length) picks.push(p + 4);
    if (d[p + 1] === 5 && p + 5 < d.length) picks.push(p + 4, p + 5);
  }
  return picks[Math.floor(rng() * picks.length)]!;
}
