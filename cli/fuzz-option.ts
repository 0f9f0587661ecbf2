/** --fuzz SPEC / --fuzz-replay FILE of import and export (relay mode): the mutator, each mutation logged as it is made. */
import { readFileSync } from "node:fs";
import { UsbipError, RuntimeCode } from "../protocol/errors.js";
import type { Logger } from "../shared/log.js";
import type { Mutator } from "../relay/mutator.js";
import { UsageError } from "./errors.js";

/**
 * Parse SPEC (a usage error names what is wrong) and make its mutator; with `replay` (a file of
 * logged mutations, the relay's own "fuzz: message …" lines), exactly those are made instead.
 * The relay's module is loaded only here.
 */
export async function fuzzMutator(spec: string | undefined, replay: string | undefined, log: Logger, cmd: string): Promise<Mutator> {
  const { Mutator, parseFuzzSpec, parseMutations, formatMutation, FUZZ_FIELDS } = await import("../relay/mutator.js");
  const onMutation = (m: Parameters<typeof formatMutation>[0]) => log.warn(formatMutation(m));
  if (replay !== undefined) {
    if (spec !== undefined) throw new UsageError(`${cmd}: give --fuzz or --fuzz-replay, not both`);
    let text: string;
    try {
      text = readFileSync(replay, "utf8");
    } catch (e) {
      throw new UsbipError(RuntimeCode.INPUT, `${cmd}: cannot read the mutation log ${replay}: ${(e as NodeJS.ErrnoException).code}`);
    }
    const plan = parseMutations(text);
    if (plan.length === 0) throw new UsageError(`${cmd}: --fuzz-replay ${replay} holds no "fuzz: message N (seqnum S) FIELD: OLD -> NEW" line`);
    log.warn(`fuzz: replaying ${plan.length} mutations from ${replay}`);
    return new Mutator({ seed: 0, rate: 0, fields: FUZZ_FIELDS }, { plan, onMutation });
  }
  const s = parseFuzzSpec(spec!);
  log.warn(`fuzz: seed ${s.seed}, rate ${s.rate}, fields ${s.fields.join("+")}`);
  return new Mutator(s, { onMutation });
}
