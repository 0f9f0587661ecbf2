/** `usbip-qrexec port [--json]`: the devices imported on this machine (what `usbip port` shows). */
import { readFileSync } from "node:fs";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { Vhci, VdevStatus } from "../kernel-glue/vhci.js";
import { speedToString } from "../protocol/speed.js";
import { formatHostPort } from "../protocol/host-port.js";
import { readImportRecord } from "../shared/rundir.js";
import { type Command, parse, printHelp, writeOut } from "./command.js";
import { ExitCode } from "./errors.js";

const help = `usage: usbip-qrexec port [--json]

List the devices imported on this machine, one line per vhci-hcd port in use
(what 'usbip port' shows): the port number (for 'detach -p PORT'), the speed
in Mbit/s, the device's busid on this machine and its vendor:product id, the
mode (kernel or relay), the remote side (a qube, or HOST:PORT for TCP), the
busid there, and the statefile ('detach --statefile'). Ports attached by
Debian's 'usbip attach' show the remote it recorded in /var/run/vhci_hcd.
Nothing imported prints "no imported devices". vhci-hcd not loaded: the same.

Options:
  --json      one JSON array instead of the table
  -h, --help  this text`;

export interface ImportedPort {
  port: number;
  hub: "hs" | "ss";
  speed: string;
  localBusid: string;
  id: string;
  mode: string;
  remote: string;
  busid: string;
  statefile: string;
}

/** usbip attach's record of a port: /var/run/vhci_hcd/portN holds "HOST PORT BUSID". */
function usbipRecord(port: number): { remote: string; busid: string } | undefined {
  try {
    const [host, tcpPort, busid] = readFileSync(`/var/run/vhci_hcd/port${port}`, "utf8").trim().split(/\s+/);
    return host && busid ? { remote: formatHostPort(host, Number(tcpPort)), busid } : undefined;
  } catch {
    return undefined;
  }
}

export function importedPorts(sysfs = new Sysfs()): ImportedPort[] {
  const vhci = new Vhci(sysfs);
  let ports;
  try {
    ports = vhci.ports();
  } catch {
    return []; // vhci-hcd not loaded: nothing imported
  }
  return ports
    .filter((p) => p.status !== VdevStatus.NULL)
    .map((p) => {
      const rec = readImportRecord(p.port);
      const other = rec ? undefined : usbipRecord(p.port);
      const attr = (a: string) => {
        try {
          return sysfs.read(`bus/usb/devices/${p.localBusid}/${a}`).trim();
        } catch {
          return "";
        }
      };
      const vid = attr("idVendor");
      const pid = attr("idProduct");
      return {
        port: p.port,
        hub: p.hub,
        speed: speedToString(p.speed),
        localBusid: p.localBusid === "0-0" ? "" : p.localBusid,
        id: vid && pid ? `${vid}:${pid}` : "",
        mode: rec?.mode ?? (other ? "usbip" : ""),
        remote: rec?.remote ?? other?.remote ?? "",
        busid: rec?.busid ?? other?.busid ?? "",
        statefile: rec?.statefile ?? "",
      };
    });
}

export const portCommand: Command = {
  name: "port",
  help,
  async run(argv) {
    const { values } = parse("port", argv, { json: { type: "boolean", default: false } });
    if (values.help) {
      await printHelp(help);
      return ExitCode.OK;
    }
    const ports = importedPorts();
    if (values.json) {
      await writeOut(JSON.stringify(ports, null, 2) + "\n");
      return ExitCode.OK;
    }
    if (ports.length === 0) {
      await writeOut("no imported devices\n");
      return ExitCode.OK;
    }
    const rows = [["port", "speed", "local", "id", "mode", "remote", "busid", "statefile"], ...ports.map((p) => [String(p.port).padStart(2, "0"), p.speed, p.localBusid || "-", p.id || "-", p.mode || "-", p.remote || "-", p.busid || "-", p.statefile || "-"])];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    await writeOut(rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n") + "\n");
    return ExitCode.OK;
  },
};
