/**
 * What an import leaves on the machine while its device is attached: the statefile (the vhci
 * port, for 'detach --statefile' and qubes.USBDetach) and the record 'usbip-qrexec port' reads
 * (remote, busid, statefile). Both go on every exit path.
 */
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { removeImportRecord, writeImportRecord } from "../shared/rundir.js";

export interface ImportState {
  remove(): void;
  /** the import moved to another vhci port: the statefile names it, the old port's record goes */
  moveTo(port: number): ImportState;
}

/** The remote side of a qrexec import: the qube (qubes.USBAttach exports it) and, from the statefile's name, the busid. */
export function qrexecRemote(statefile: string): { remote: string; busid: string } {
  const remote = process.env.USBIP_QREXEC_REMOTE_DOMAIN ?? process.env.QREXEC_REMOTE_DOMAIN ?? "";
  const base = path.basename(statefile);
  const prefix = `usb-import-${remote}-`;
  const busid = remote !== "" && base.startsWith(prefix) && base.endsWith(".state") ? base.slice(prefix.length, -".state".length) : "";
  return { remote, busid };
}

export function writeImportState(port: number, statefile: string, remote: { remote: string; busid: string }, mode: string): ImportState {
  writeFileSync(statefile, `${port}\n`);
  writeImportRecord({ port, pid: process.pid, remote: remote.remote, busid: remote.busid, statefile: path.resolve(statefile), mode });
  return {
    remove() {
      rmSync(statefile, { force: true });
      removeImportRecord(port);
    },
    moveTo(next: number) {
      const moved = writeImportState(next, statefile, remote, mode);
      removeImportRecord(port);
      return moved;
    },
  };
}
