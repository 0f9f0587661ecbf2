/**
 * The short soak (bench/soak.ts is the 60 s measurement): random-size URBs and unlinks through
 * both relays to the virtual SourceSink for a few seconds: all checks pass (no stuck URB,
 * CMD/RET balanced, data intact, heap within its bound), and the checks do catch a device that
 * never answers one URB and one that corrupts OUT data.
 */
import test from "ava";
import { soak, SOAK_DEVID } from "../bench/soak.js";
import { SourceSink } from "../device/source-sink.js";
import type { CmdSubmit } from "../protocol/messages.js";
import type { UrbHandle } from "../device/urb-device.js";

test.serial("soak: 4 s of random URBs and unlinks through both relays: every check passes", async (t) => {
  const r = await soak({ seconds: 4, seed: 7, warmupSeconds: 1 });
  t.is(r.checks, "ok", JSON.stringify(r.checks));
  t.true(r.urbs > 1000, `only ${r.urbs} URBs`);
  t.true(r.unlinks.cancelled > 0 && r.unlinks.completedFirst > 0, JSON.stringify(r.unlinks));
  t.is(r.stuck, 0);
  t.is(r.relays.frontend.cmdSubmit, r.relays.backend.cmdSubmit);
});

/** Never answers its 500th transfer (a stuck URB, as a hung device would leave). */
class Forgetful extends SourceSink {
  private count = 0;
  protected override transfer(address: number, cmd: CmdSubmit, out: Buffer): UrbHandle {
    if (++this.count === 500) return { result: new Promise(() => {}), cancel() {} };
    return super.transfer(address, cmd, out);
  }
}

test.serial("soak: a URB the device never answers is reported stuck", async (t) => {
  const r = await soak({ seconds: 2, seed: 3, warmupSeconds: 0.5, device: new Forgetful(SOAK_DEVID) });
  t.not(r.checks, "ok");
  t.true(r.stuck >= 1);
  t.true((r.checks as string[]).some((c) => /never answered \(stuck\)/.test(c)), JSON.stringify(r.checks));
});

/** Flips a byte of every 300th OUT transfer before checking it. */
class Corrupting extends SourceSink {
  private count = 0;
  protected override transfer(address: number, cmd: CmdSubmit, out: Buffer): UrbHandle {
    if (address === 0x02 && ++this.count % 300 === 0 && out.length > 0) out = Buffer.from(out).fill(0xee, 0, 1);
    return super.transfer(address, cmd, out);
  }
}

test.serial("soak: corrupted data is reported", async (t) => {
  const r = await soak({ seconds: 2, seed: 5, warmupSeconds: 0.5, device: new Corrupting(SOAK_DEVID) });
  t.true(Array.isArray(r.checks) && r.checks.some((c) => /corrupt OUT transfers/.test(c)), JSON.stringify(r.checks));
});
