/**
 * fast-check properties of the codec: encode → decode round trip for every kind, invariance
 * under any chunking, and arbitrary / mutated bytes yielding only typed errors or need-more
 * with the decoder still usable afterwards (msgpack's fuzz idea).
 */
import test from "ava";
import fc from "fast-check";
import { ClientStreamDecoder } from "../protocol/client-decoder.js";
import { ServerStreamDecoder } from "../protocol/server-decoder.js";
import { ErrorCode, ProtocolError } from "../protocol/errors.js";
import { formatHandshake, scanHandshake } from "../protocol/handshake.js";
import { SPEED_STRINGS } from "../protocol/speed.js";
import { UrbTable } from "../protocol/urb-table.js";
import { encodeSubmitHeader, encodeToBuffer } from "../protocol/encoder.js";
import type { Message } from "../protocol/messages.js";
import { normalize, splitAt } from "./helpers/fixtures.js";
import { decodePair, encodeAll, opSession, urbSession } from "./helpers/session.js";

const RUNS = Number(process.env.FC_RUNS ?? 300);
const codes = new Set<string>(Object.values(ErrorCode));

test("round trip: URB sessions (CMD_SUBMIT, RET_SUBMIT, CMD_UNLINK, RET_UNLINK, ISO) decode to what was encoded", (t) => {
  fc.assert(
    fc.property(urbSession, (s) => {
      const d = decodePair([encodeAll(s.client)], [encodeAll(s.server)]);
      if (d.clientError || d.serverError) throw d.clientError ?? d.serverError!;
      t.deepEqual(d.client.map(normalize), s.client.map(normalize));
      t.deepEqual(d.server.map(normalize), s.server.map(normalize));
    }),
    { numRuns: RUNS },
  );
});

test("round trip: OP sessions (DEVLIST, IMPORT failed / succeeded then URBs) decode to what was encoded", (t) => {
  fc.assert(
    fc.property(opSession, (s) => {
      const d = decodePair([encodeAll(s.client)], [encodeAll(s.server)], { client: { phase: "op" }, server: { phase: "op" } });
      if (d.clientError || d.serverError) throw d.clientError ?? d.serverError!;
      t.deepEqual(d.client.map(normalize), s.client.map(normalize));
      t.deepEqual(d.server.map(normalize), s.server.map(normalize));
    }),
    { numRuns: RUNS },
  );
});

test("round trip: handshake lines", (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffff_ffff }),
      fc.constantFrom(...SPEED_STRINGS),
      fc.option(fc.stringMatching(/^[!-~]([ -~]{0,20}[!-~])?$/), { nil: undefined }),
      (devid, speed, reserved) => {
        const line = formatHandshake({ devid, speed, reserved });
        const r = scanHandshake(line);
        if (r.type !== "ok") throw new Error(`${line.toString()}: ${r.type}`);
        t.is(r.length, line.length);
        t.deepEqual(r.handshake, { kind: "HANDSHAKE", devid, speed, ...(reserved === undefined ? {} : { reserved }) });
      },
    ),
    { numRuns: RUNS },
  );
});

test("decoding is invariant under any chunking of either stream", (t) => {
  fc.assert(
    fc.property(
      opSession,
      fc.array(fc.nat(), { maxLength: 40 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      (s, cc, sc) => {
        const cb = encodeAll(s.client);
        const sb = encodeAll(s.server);
        const opts = { client: { phase: "op" }, server: { phase: "op" } } as const;
        const whole = decodePair([cb], [sb], opts);
        const split = decodePair(
          splitAt(cb, cc.map((x) => x % (cb.length + 1))),
          splitAt(sb, sc.map((x) => x % (sb.length + 1))),
          opts,
        );
        t.is(split.clientError, null);
        t.is(split.serverError, null);
        t.deepEqual(split.client.map(normalize), whole.client.map(normalize));
        t.deepEqual(split.server.map(normalize), whole.server.map(normalize));
      },
    ),
    { numRuns: RUNS },
  );
});

/** Feed bytes in chunks; every outcome must be a message, need-more, or a typed ProtocolError. */
function feedGarbage(dec: ClientStreamDecoder | ServerStreamDecoder, chunks: Buffer[], total: number): void {
  for (const c of chunks) {
    dec.push(c);
    for (let m = dec.next(); m !== null; m = dec.next()) if (typeof m.kind !== "string") throw new Error("message without kind");
  }
  const e = dec.end();
  if (e !== null) {
    if (!(e instanceof ProtocolError)) throw new Error("untyped error");
    if (!codes.has(e.code)) throw new Error(`unknown code ${e.code}`);
    if (!(e.offset >= 0 && e.offset <= total)) throw new Error(`offset ${e.offset} outside 0..${total}`);
    if (e.rule.length === 0) throw new Error("empty rule");
    // the error is sticky and the decoder does not throw afterwards
    dec.push(Buffer.from([1, 2, 3]));
    if (dec.next() !== null || dec.error !== e) throw new Error("error not sticky");
  }
}

test("arbitrary bytes yield only typed errors or need-more, and the decoder is usable after reset()", (t) => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 600 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      fc.constantFrom("op", "urb", "handshake"),
      urbSession,
      (bytes, cuts, phase, valid) => {
        const b = Buffer.from(bytes);
        const chunks = splitAt(b, cuts.map((x) => x % (b.length + 1)));
        const table = new UrbTable();
        // the server side gets a table primed with real outstanding URBs, so RETs can match
        const cd = new ClientStreamDecoder({ table, phase: phase === "op" ? "op" : "urb" });
        feedGarbage(cd, chunks, b.length);
        const sd = new ServerStreamDecoder({ table: new UrbTable(), phase: phase as "op" | "urb" | "handshake" });
        new ClientStreamDecoder({ table: sd.table }).feed(encodeAll(valid.client));
        feedGarbage(sd, chunks, b.length);
        // still usable: reset and decode a valid session
        cd.reset("urb");
        cd.table.clear();
        const shared = new UrbTable();
        const c2 = new ClientStreamDecoder({ table: shared });
        const s2 = new ServerStreamDecoder({ table: shared });
        t.is(c2.feed(encodeAll(valid.client)).length, valid.client.length);
        t.is(s2.feed(encodeAll(valid.server)).length, valid.server.length);
        // and the very instances that failed decode correctly after reset
        const cAgain = cd.feed(encodeAll(valid.client));
        t.is(cd.error, null);
        t.deepEqual(cAgain.map(normalize), valid.client.map(normalize));
      },
    ),
    { numRuns: RUNS },
  );
});

test("mutated valid sessions (byte flips, truncation) yield only typed errors, never a throw", (t) => {
  let detected = 0;
  fc.assert(
    fc.property(
      opSession,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
      fc.nat(),
      fc.boolean(),
      (s, flips, cutAt, truncate) => {
        const cb = encodeAll(s.client);
        const sb = Buffer.from(encodeAll(s.server));
        for (const [i, x] of flips) if (sb.length > 0) sb[i % sb.length]! ^= x;
        const sbx = truncate ? sb.subarray(0, cutAt % (sb.length + 1)) : sb;
        const table = new UrbTable();
        const cd = new ClientStreamDecoder({ table, phase: "op" });
        feedGarbage(cd, [cb], cb.length);
        const sd = new ServerStreamDecoder({ table, phase: "op" });
        feedGarbage(sd, splitAt(sbx, [cutAt % (sbx.length + 1)]), sbx.length);
        if (sd.error !== null) detected++;
      },
    ),
    { numRuns: RUNS },
  );
  t.true(detected > RUNS / 10, `only ${detected} of ${RUNS} mutations detected`);
});

/**
 * canonicalHeader (what a relay may forward instead of re-encoding): after each submit next()
 * returns, it is defined exactly when the 48 header bytes as received equal encodeSubmitHeader
 * of the decoded message, and then it holds those bytes — under any chunking, with some headers
 * made non-canonical the ways a peer may send them (0xffffffff packets on a non-ISO URB, a RET's
 * padding not zero).
 */
test("canonicalHeader is set exactly for submits whose header is what encodeSubmitHeader writes, under any chunking", (t) => {
  let canonical = 0;
  let other = 0;
  fc.assert(
    fc.property(urbSession, fc.array(fc.nat(), { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 20 }), fc.infiniteStream(fc.nat({ max: 7 })), (s, cc, sc, rnd) => {
      const it = rnd[Symbol.iterator]();
      const roll = () => it.next().value as number;
      // the wire streams with some headers bent (framing unchanged: non-ISO np, RET padding)
      const bend = (msgs: Message[]): Buffer =>
        Buffer.concat(
          msgs.map((m) => {
            const b = encodeToBuffer(m);
            const submit = m.kind === "CMD_SUBMIT" || m.kind === "RET_SUBMIT";
            if (submit && m.isoPackets === undefined && roll() === 0) b.writeInt32BE(-1, 32);
            if (m.kind === "RET_SUBMIT" && roll() === 0) b[40 + roll()] = 1 + roll();
            return b;
          }),
        );
      const cb = bend(s.client);
      const sb = bend(s.server);
      const table = new UrbTable();
      const check = (dec: ClientStreamDecoder | ServerStreamDecoder, wire: Buffer, chunks: Buffer[]) => {
        for (const c of chunks) {
          dec.push(c);
          for (let m = dec.next(); m !== null; m = dec.next()) {
            const h = dec.canonicalHeader;
            if (m.kind !== "CMD_SUBMIT" && m.kind !== "RET_SUBMIT") {
              if (h !== undefined) throw new Error(`canonicalHeader set for ${m.kind}`);
              continue;
            }
            const received = wire.subarray(dec.messageOffset, dec.messageOffset + 48);
            const same = received.equals(encodeSubmitHeader(m));
            if (same !== (h !== undefined)) throw new Error(`${m.kind} ${m.seqnum}: canonical ${same}, canonicalHeader ${h === undefined ? "unset" : "set"}`);
            if (h !== undefined && !h.equals(received)) throw new Error(`${m.kind} ${m.seqnum}: canonicalHeader differs from the bytes received`);
            if (same) canonical++;
            else other++;
          }
        }
        if (dec.end() !== null) throw dec.error!;
      };
      check(new ClientStreamDecoder({ table }), cb, splitAt(cb, cc.map((x) => x % (cb.length + 1))));
      check(new ServerStreamDecoder({ table }), sb, splitAt(sb, sc.map((x) => x % (sb.length + 1))));
    }),
    { numRuns: RUNS },
  );
  // both outcomes were met (the bending is not a no-op and the plain headers are canonical)
  t.true(canonical > 0);
  t.true(other > 0);
});
