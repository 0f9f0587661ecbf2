/**
 * Runtime state shared by the commands of one machine: /run/usbip-qrexec (USBIP_QREXEC_RUNDIR
 * overrides it) holds export-<busid>.pid for every running export, so `detach --busid` and
 * `detach --all` can stop them and let each clean up exactly once.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

export function runDir(): string {
  return process.env.USBIP_QREXEC_RUNDIR ?? "/run/usbip-qrexec";
}

export function exportPidFile(busid: string): string {
  return path.join(runDir(), `export-${busid}.pid`);
}

export function writeExportPid(busid: string): void {
  mkdirSync(runDir(), { recursive: true });
  writeFileSync(exportPidFile(busid), `${process.pid}\n`);
}

export function removeExportPid(busid: string): void {
  removeStaleExportPid(busid, process.pid);
}

/** Remove the pid file of `busid` if it names `pid` (an export that died without doing it). */
export function removeStaleExportPid(busid: string, pid: number): void {
  try {
    if (readFileSync(exportPidFile(busid), "utf8").trim() === String(pid)) rmSync(exportPidFile(busid));
  } catch {
    /* none */
  }
}

/** Running exports by busid (stale pid files are skipped). */
export function runningExports(): Map<string, number> {
  const out = new Map<string, number>();
  let files: string[] = [];
  try {
    files = readdirSync(runDir());
  } catch {
    return out;
  }
  for (const f of files) {
    const m = /^export-(.+)\.pid$/.exec(f);
    if (!m) continue;
    const pid = Number(readFileSync(path.join(runDir(), f), "utf8").trim());
    if (Number.isInteger(pid) && alive(pid)) out.set(m[1]!, pid);
  }
  return out;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The vhci-hcd port this machine attached last (importers start their search after it). */
export function lastVhciPort(): number | undefined {
  try {
    const n = Number(readFileSync(path.join(runDir(), "vhci-last-port"), "utf8").trim());
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

export function setLastVhciPort(port: number): void {
  try {
    mkdirSync(runDir(), { recursive: true });
    writeFileSync(path.join(runDir(), "vhci-last-port"), `${port}\n`);
  } catch {
    /* a hint only */
  }
}

/** What `port` shows of an import beyond vhci-hcd's status: who it came from, where its statefile is. */
export interface ImportRecord {
  port: number;
  pid: number;
  /** the remote side: a qube's name (qrexec) or HOST:PORT (TCP); "" when unknown */
  remote: string;
  /** the remote busid; "" when unknown */
  busid: string;
  statefile: string;
  mode: string;
}

const importRecordFile = (port: number) => path.join(runDir(), `import-port-${port}.json`);

export function writeImportRecord(r: ImportRecord): void {
  try {
    mkdirSync(runDir(), { recursive: true });
    writeFileSync(importRecordFile(r.port), JSON.stringify(r) + "\n");
  } catch {
    /* `port` then shows the port without these details */
  }
}

export function removeImportRecord(port: number, pid = process.pid): void {
  const r = readImportRecord(port);
  if (r !== undefined && r.pid === pid) rmSync(importRecordFile(port), { force: true });
}

/** The record of `port`, if the process that wrote it is still running. */
export function readImportRecord(port: number): ImportRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(importRecordFile(port), "utf8")) as ImportRecord;
    return typeof r.pid === "number" && alive(r.pid) ? r : undefined;
  } catch {
    return undefined;
  }
}
