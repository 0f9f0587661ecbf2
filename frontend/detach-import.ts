/**
 * Detach on the importing side: free a vhci-hcd port (by statefile or number); the import that
 * holds it sees its link end and cleans up; the statefile goes, the virtual device is awaited.
 */
import { readFileSync, rmSync } from "node:fs";
import { GlueCode, UsbipError } from "../protocol/errors.js";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { Vhci, VdevStatus } from "../kernel-glue/vhci.js";
import { readImportRecord } from "../shared/rundir.js";

/** `detach --statefile F`: free the port F records, remove F, wait until the virtual device is gone. */
export async function detachStatefile(file: string, orphaned = false): Promise<void> {
  let text: string;
  try {
    text = readFileSync(file, "utf8").trim();
  } catch {
    if (orphaned) return; // it died before attaching, or after its own cleanup
    throw new UsbipError(GlueCode.NOT_ATTACHED, `detach: ${file}: no such statefile (not attached)`);
  }
  const port = Number(text);
  if (!/^\d+$/.test(text)) throw new UsbipError(GlueCode.STATEFILE, `detach: ${file} does not hold a port number`);
  const vhci = new Vhci(new Sysfs());
  const p = vhci.port(port);
  if (p === undefined) throw new UsbipError(GlueCode.STATEFILE, `detach: vhci-hcd has no port ${port}`);
  if (p.status !== VdevStatus.NULL) vhci.detach(port);
  rmSync(file, { force: true });
  await vhci.waitDetached(port, p.localBusid, 15_000);
}

/** `detach -p PORT`: free the port; the import that holds it ends and removes its statefile. */
export async function detachPort(port: number): Promise<void> {
  const vhci = new Vhci(new Sysfs());
  const p = vhci.port(port);
  if (p === undefined) throw new UsbipError(GlueCode.NOT_ATTACHED, `detach: vhci-hcd has no port ${port} (see 'usbip-qrexec port')`);
  if (p.status === VdevStatus.NULL) throw new UsbipError(GlueCode.NOT_ATTACHED, `detach: port ${port} is not in use`);
  const record = readImportRecord(port);
  vhci.detach(port);
  if (record !== undefined) rmSync(record.statefile, { force: true });
  await vhci.waitDetached(port, p.localBusid, 15_000);
}
