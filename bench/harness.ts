/**
 * Side-by-side measurement: each case runs ours and its baseline alternately in the same
 * process, several rounds, and reports medians and their ratio. Timing only; the benches check
 * their own outputs separately so a broken fast path cannot look fast.
 */
export interface Side {
  /** one unit of work; returns how many items (messages or bytes) it processed */
  run(): number;
}

export interface Measured {
  perSecond: number;
  rounds: number[];
}

function once(side: Side, minMs: number): number {
  let items = 0;
  const t0 = process.hrtime.bigint();
  let elapsed = 0;
  do {
    items += side.run();
    elapsed = Number(process.hrtime.bigint() - t0) / 1e6;
  } while (elapsed < minMs);
  return (items / elapsed) * 1000;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/** Alternate the sides for `rounds` rounds of at least `minMs` each; medians per side. */
export function compare(sides: Record<string, Side>, rounds = 7, minMs = 150): Record<string, Measured> {
  const names = Object.keys(sides);
  const samples: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (const n of names) once(sides[n]!, 50); // warm-up (JIT)
  for (let r = 0; r < rounds; r++) for (const n of names) samples[n]!.push(once(sides[n]!, minMs));
  return Object.fromEntries(names.map((n) => [n, { perSecond: median(samples[n]!), rounds: samples[n]!.map((x) => Math.round(x)) }]));
}
