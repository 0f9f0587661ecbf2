/** The termination signal's handlers: installed for the body, removed on every path; a caller's own signal is left to the caller. */
import test from "ava";
import { terminationSignal, withTerminationSignal } from "../qrexec/agent.js";

const counts = () => (["SIGTERM", "SIGINT", "SIGHUP"] as const).map((s) => process.listenerCount(s));

test.serial("withTerminationSignal: handlers during the body, none after it returns or throws", async (t) => {
  const before = counts();
  const during = await withTerminationSignal(async () => counts());
  t.deepEqual(during, before.map((n) => n + 1));
  t.deepEqual(counts(), before);
  await t.throwsAsync(withTerminationSignal(async () => {
    throw new Error("boom");
  }), { message: "boom" });
  t.deepEqual(counts(), before);
});

test.serial("withTerminationSignal: a signal given by the caller is used and not disposed", async (t) => {
  const before = counts();
  const mine = terminationSignal();
  const used = await withTerminationSignal(async (s) => s, mine);
  t.is(used, mine);
  t.deepEqual(counts(), before.map((n) => n + 1), "still the caller's");
  mine.dispose();
  t.deepEqual(counts(), before);
});

test.serial("the body's signal resolves with the signal that arrived", async (t) => {
  const got = await withTerminationSignal((s) => {
    setImmediate(() => process.emit("SIGHUP", "SIGHUP"));
    return s.promise;
  });
  t.is(got, "SIGHUP");
});
