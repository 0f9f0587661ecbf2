/**
 * The one import lifecycle (import in kernel and relay mode, connect --tcp): load vhci-hcd,
 * attach on a free port (the mode says how), write the statefile, wait until the device
 * enumerated, tell qubes.USBAttach, wait for the end (the mode says what ends it), release the
 * port, wait until it is free, remove the statefile. A mode that owns the link (the relay) moves
 * to another port when the one it got never enumerates the device (see Attachment.move). Every
 * exit path frees the port and removes the statefile; the termination signal's handlers are
 * disposed by whoever made them.
 */
import { Sysfs } from "../kernel-glue/sysfs.js";
import { ensureModule } from "../kernel-glue/system.js";
import { Vhci } from "../kernel-glue/vhci.js";
import { InterruptedError } from "../protocol/errors.js";
import { notifyAttached, type TerminationSignal } from "../qrexec/agent.js";
import type { Logger } from "../shared/log.js";
import { lastVhciPort, setLastVhciPort } from "../shared/rundir.js";
import { writeImportState, type ImportState } from "./import-state.js";

/** One mode's attachment: the port it got, and how its link ends. */
export interface Attachment {
  /** the vhci port in use (a move changes it) */
  port: number;
  /** how the log names the attach ("" or " through the relay") */
  how?: string;
  /** rejects if the link ends before the device enumerated (the relay's end); never resolves */
  endedEarly?: Promise<never>;
  /** once enumerated: resolves with why the import ends (the link closed, a signal, the port freed) */
  untilEnd(signal: Promise<NodeJS.Signals>): Promise<string>;
  /** after the port was released: throws what the end means (a relay violation), if anything */
  afterRelease?(): void;
  /** an error ended the import early: stop the mode's machinery */
  abort?(): void;
  /**
   * A mode that owns the link (the relay) can tell a port that will not enumerate — vhci-hcd
   * silent for STALL_QUIET_MS with nothing outstanding and no device on the bus — and move:
   * give the port up and attach on another one, the backend none the wiser.
   */
  move?: {
    /** vhci-hcd has been silent this long with nothing outstanding */
    quietMs(): number;
    /** release `port` and attach on another one; resolves with the new port */
    toAnotherPort(): Promise<number>;
  };
}

/**
 * A port is given up when vhci-hcd sent nothing for this long after the attach (or after its
 * last URB, all answered) and no device appeared: the hub submits its first GET_DESCRIPTOR well
 * within a second of the attach even under emulation, and an enumeration in progress is never
 * silent that long (the hub's control URBs time out after 5 s, and are answered or unlinked).
 */
export const STALL_QUIET_MS = 6000;
/** At most this many moves before the import fails with the stall's message. */
export const MAX_PORT_MOVES = 3;

export interface ImportLifecycle {
  statefile: string;
  log: Logger;
  sysfs?: Sysfs;
  /** the statefile's mode and the import record's remote (for 'usbip-qrexec port') */
  mode: "kernel" | "relay";
  remote: { remote: string; busid: string };
  signal: TerminationSignal;
  attachTimeoutMs?: number;
  /** called once the device enumerated */
  onAttached?: (port: number) => void;
}

/** Attach with `attach` (given vhci-hcd, loaded, and the port used last) and run the import to its end. */
export async function runImport(o: ImportLifecycle, attach: (vhci: Vhci, after: number | undefined) => Promise<Attachment>): Promise<number> {
  const sysfs = o.sysfs ?? new Sysfs();
  await ensureModule(sysfs, "vhci-hcd");
  const vhci = new Vhci(sysfs);
  const a = await attach(vhci, lastVhciPort());
  setLastVhciPort(a.port);
  o.log.info(`attached on vhci port ${a.port}${a.how ?? ""}`);
  let state: ImportState | undefined;
  try {
    state = writeImportState(a.port, o.statefile, o.remote, o.mode);
    const interrupted = o.signal.promise.then((s): never => {
      throw new InterruptedError(s, "before the device enumerated");
    });
    interrupted.catch(() => {});
    const deadline = Date.now() + (o.attachTimeoutMs ?? 30_000);
    let attached: string | undefined;
    for (let moves = 0; attached === undefined; moves++) {
      const move = moves < MAX_PORT_MOVES ? a.move : undefined;
      const stalled = move && (() => move.quietMs() >= STALL_QUIET_MS);
      attached = await Promise.race([vhci.waitEnumerated(a.port, Math.max(0, deadline - Date.now()), stalled), interrupted, ...(a.endedEarly ? [a.endedEarly] : [])]);
      if (attached !== undefined || move === undefined) continue;
      const from = a.port;
      o.log.warn(`vhci port ${from} did not enumerate the device (vhci-hcd silent for ${STALL_QUIET_MS / 1000} s): attaching on another port`);
      a.port = await move.toAnotherPort();
      setLastVhciPort(a.port);
      state = state.moveTo(a.port);
      o.log.info(`attached on vhci port ${a.port}${a.how ?? ""} (moved from port ${from})`);
    }
    o.log.info(`device enumerated as ${attached}`);
    notifyAttached();
    o.onAttached?.(a.port);
    const why = await a.untilEnd(o.signal.promise);
    o.log.info(`ending (${why})`);
    vhci.release(a.port);
    await vhci.waitDetached(a.port, attached, 10_000).catch((e: Error) => o.log.warn(e.message));
    a.afterRelease?.();
    return 0;
  } catch (e) {
    a.abort?.();
    vhci.release(a.port);
    throw e;
  } finally {
    state?.remove();
  }
}
