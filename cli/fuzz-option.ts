/** --fuzz SPEC of import and export (relay mode): the mutator, each mutation logged as it is made. */
import type { Logger } from "../shared/log.js";
import type { Mutator } from "../relay/mutator.js";

/** Parse SPEC (a usage error names what is wrong) and make its mutator; the relay's module is loaded only here. */
export async function fuzzMutator(spec: string, log: Logger): Promise<Mutator> {
  const { Mutator, parseFuzzSpec } = await import("../relay/mutator.js");
  const s = parseFuzzSpec(spec);
  log.warn(`fuzz: seed ${s.seed}, rate ${s.rate}, fields ${s.fields.join("+")}`);
  return new Mutator(s, { onMutation: (m) => log.warn(`fuzz: message ${m.n} (seqnum ${m.seqnum}) ${m.field}: ${m.from} -> ${m.to}`) });
}
