/**
 * `export DEVICE --mode relay`: usbip-host gets one end of a socketpair; every CMD_* from the
 * frontend is validated (protocol/relay-rules.ts against the device's sysfs endpoints) before
 * the backend kernel sees it, and unlinks are held briefly to keep usbip-host's unlink race
 * away (relay/urb-relay.ts). Works with the single socket or separate pipes (no SIGUSR1).
 */
import type { Sysfs } from "../kernel-glue/sysfs.js";
import { handOverFd, handOverSocket } from "../kernel-glue/handover.js";
import { SysfsDeviceView, watchReconfiguration } from "../kernel-glue/endpoints.js";
import { sendHandshake } from "./send-handshake.js";
import type { Logger } from "../shared/log.js";
import { openLink, relayThreadUsable } from "../qrexec/link.js";
import { UrbRelay, type RelayResult } from "../relay/urb-relay.js";
import { RelayThread } from "../relay/relay-thread.js";
import type { ExportRelayThreadData } from "./export-relay-thread.js";
import { runExport } from "./export-lifecycle.js";
import { RelayViolationError } from "../protocol/errors.js";
import type { Message } from "../protocol/messages.js";
import type { SubmittedUrb } from "../protocol/urb-table.js";
import { PcapngTrace } from "../trace/writer.js";
import { XferType } from "../trace/usbmon.js";
import { FuzzStage, type FuzzStageOptions } from "../relay/fuzz-stage.js";
import type { Mutator } from "../relay/mutator.js";
import { PassThrough, type Readable, type Writable } from "node:stream";

/** The usbmon transfer type from the device's own descriptors. */
function xferTypeOf(view: SysfsDeviceView, m: Message, urb: SubmittedUrb | undefined): number | undefined {
  const ep = m.kind === "CMD_SUBMIT" ? m.ep : urb?.ep;
  const dir = m.kind === "CMD_SUBMIT" ? m.direction : urb?.direction;
  if (ep === undefined || dir === undefined) return undefined;
  const t = view.endpoint(ep, dir);
  return t === "iso" ? XferType.ISO : t === "interrupt" ? XferType.INTERRUPT : t === "bulk" ? XferType.BULK : t === "control" ? XferType.CONTROL : undefined;
}

export interface ExportRelayOptions {
  device: string;
  log: Logger;
  sysfs?: Sysfs;
  /** Defaults to 100 ms. */
  unlinkGraceMs?: number;
  /** write every URB to this pcapng file (usbmon events) */
  trace?: string;
  /** --fuzz: mutate the frontend's CMD_* on their way to usbip-host; validate: false sends them on unchecked */
  fuzz?: { mutator: Mutator; validate: boolean };
}

export async function exportRelay(opts: ExportRelayOptions): Promise<number> {
  // a trace that cannot be written is refused before the device is touched
  const trace = opts.trace === undefined ? undefined : PcapngTrace.open(opts.trace, (e) => opts.log.warn(`trace ${opts.trace}: ${e.message}; tracing stopped, the relay goes on`));
  try {
    return await exportRelayTraced(opts, trace);
  } finally {
    await trace?.close().catch(() => {});
  }
}

/** How long usbip-host's unlinks are held by default (relay/urb-relay.ts: Unlink hold). */
const UNLINK_GRACE_MS = 100;

function exportRelayTraced(opts: ExportRelayOptions, trace: PcapngTrace | undefined): Promise<number> {
  let violation: RelayViolationError | undefined;
  const ended = (r: RelayResult, log: Logger) => {
    if (r.violation) {
      violation = new RelayViolationError(r.violation.error, "frontend");
      log.warn(violation.message);
    }
    log.info(`relay: ${JSON.stringify(r.stats)}`);
  };
  // the relay's own thread when nothing needs the event loop's streams (a trace file, the
  // fuzzing stage) and the link's fds can be polled
  if (!trace && !opts.fuzz && relayThreadUsable()) {
    // started first: its start (a worker, its modules) overlaps the checks, usbip-host's module
    // and bind; the device's data follow with start()
    const thread = new RelayThread(new URL("../backend/export-relay-thread.js", import.meta.url));
    let started = false;
    return runExport({
      ...opts,
      async body(ctx) {
        let stub: number;
        try {
          stub = handOverFd(ctx.sysfs, `bus/usb/devices/${ctx.busid}/usbip_sockfd`, (fd) => String(fd));
          // nothing reads fd 0 before the thread: the frontend's first bytes come after this line
          await sendHandshake(1, ctx);
          await ctx.exported();
        } catch (e) {
          thread.cancel();
          throw e;
        }
        thread.start({ fds: { clientIn: 0, clientOut: 1, serverIn: stub, serverOut: stub }, unlinkGraceMs: opts.unlinkGraceMs ?? UNLINK_GRACE_MS, role: { sysfsRoot: ctx.sysfs.root, busid: ctx.busid, devid: ctx.devid } satisfies ExportRelayThreadData });
        started = true;
        ctx.signal.then(() => thread.stop(), () => {});
        const r = await thread.done;
        ended(r, ctx.log);
        return r.reason;
      },
    })
      .then((code) => {
        if (violation !== undefined) throw violation;
        return code;
      })
      .finally(() => {
        // the export ended before its body started the thread (a check refused the device, …)
        if (!started) thread.cancel();
      });
  }
  return runExport({
    ...opts,
    async body(ctx) {
      const link = openLink();
      const stub = await handOverSocket(ctx.sysfs, `bus/usb/devices/${ctx.busid}/usbip_sockfd`, (fd) => String(fd));
      await sendHandshake(link.output, ctx);
      await ctx.exported();
      const fuzz = opts.fuzz;
      if (fuzz && !fuzz.validate) {
        // --no-validate: the fuzzing stage alone between the link and usbip-host
        // --trace: what usbip-host got, as the stage sent it (no relay after it records anything)
        const onSent: FuzzStageOptions["onSent"] = trace && ((m, { urb, comment }) => trace.record(m, { urb, comment }));
        const stage = new FuzzStage({ mutate: "client", clientIn: link.input, clientOut: link.output, serverIn: stub, serverOut: stub, mutator: fuzz.mutator, onSent });
        stage.start();
        ctx.signal.then(() => stage.stop(), () => {});
        const f = await stage.done;
        ctx.log.warn(`fuzz: ${f.messages} messages, ${f.mutated} mutated, none validated (${f.reason}${f.error ? `: ${f.error.message}` : ""})${f.untraced ? `; trace: ${f.untraced}` : ""}`);
        return f.reason;
      }
      // --fuzz: the frontend's CMDs pass the fuzzing stage first, then the relay checks what it made
      let client: { input: Readable; output: Writable } = link;
      let stage: FuzzStage | undefined;
      if (fuzz) {
        const toRelay = new PassThrough();
        const fromRelay = new PassThrough();
        stage = new FuzzStage({ mutate: "client", clientIn: link.input, clientOut: link.output, serverIn: fromRelay, serverOut: toRelay, mutator: fuzz.mutator });
        stage.start();
        client = { input: toRelay, output: fromRelay };
      }
      const view = new SysfsDeviceView(ctx.sysfs, ctx.busid, ctx.devid);
      const reconfigured = watchReconfiguration(view);
      const relay = new UrbRelay({
        clientIn: client.input,
        clientOut: client.output,
        serverIn: stub,
        serverOut: stub,
        device: view,
        unlinkGraceMs: opts.unlinkGraceMs ?? UNLINK_GRACE_MS,
        onMessage(from, m, urb) {
          trace?.record(m, { urb, xferType: xferTypeOf(view, m, urb) });
          reconfigured(from, m);
        },
      });
      relay.start();
      ctx.signal.then(() => relay.stop(), () => {});
      const r = await relay.done;
      ended(r, ctx.log);
      if (stage) {
        stage.stop();
        const f = await stage.done;
        ctx.log.warn(`fuzz: ${f.messages} messages, ${f.mutated} mutated; the relay ${r.violation ? "stopped one" : "let all through"}`);
      }
      return r.reason;
    },
  }).then((code) => {
    if (violation !== undefined) throw violation;
    return code;
  });
}
