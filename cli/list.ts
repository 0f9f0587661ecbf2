/** `usbip-qrexec list [-l] [--json]` (exportable local devices) and `list -r HOST` (a usbipd's). */
import { SdevStatus } from "../kernel-glue/usbip-host.js";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { exportableDevices, type UsbDeviceInfo } from "../kernel-glue/usb-devices.js";
import type { ListedDevice } from "../protocol/messages.js";
import { speedToString } from "../protocol/speed.js";
import { terminationSignal } from "../qrexec/agent.js";
import { makeLogger } from "../shared/log.js";
import { type Command, parse, printHelp, writeOut } from "./command.js";
import { ExitCode, UsageError } from "./errors.js";
import { parseTcpPort } from "./hostport.js";
import { formatHostPort } from "../protocol/host-port.js";

const TIMEOUT_S = 10;

const help = `usage: usbip-qrexec list [-l] [--json]
       usbip-qrexec list -r HOST [--tcp-port P] [--json]

-l, --local (the default): the local USB devices that can be exported (hubs and
devices imported through vhci-hcd are left out): busid, vendor:product, speed,
driver, the usbip-host state (available, exported, error), interface classes,
manufacturer / product (serial). Devices with isochronous endpoints (webcams,
audio) are marked "[iso]": kernel mode carries them, and --mode userspace does
through usbfs (at most 128 packets per URB).

-r, --remote HOST: ask the usbipd on HOST (Linux's, or 'usbip-qrexec serve')
for the devices it exports, as 'usbip list -r HOST' does, and print them in its
format: busid, vendor:product, sysfs path, device and interface classes. Gives
up after ${TIMEOUT_S} s without an answer.

Options:
  -l, --local        local devices (default)
  -r, --remote HOST  a usbipd's devices (IPv6: the address without brackets)
  --tcp-port P       the usbipd's port (default 3240)
  --json             one JSON array instead of text
  -h, --help         this text`;

const state = (d: UsbDeviceInfo) => (d.usbipStatus === undefined ? "-" : d.usbipStatus === SdevStatus.AVAILABLE ? "available" : d.usbipStatus === SdevStatus.USED ? "exported" : "error");
const hex = (n: number, w: number) => n.toString(16).padStart(w, "0");
/** class/subclass/protocol as usbip prints them: 08/06/50 */
const triple = (c: number, s: number, p: number) => [c, s, p].map((n) => hex(n, 2)).join("/");

export const listCommand: Command = {
  name: "list",
  help,
  exitWhenDone: true,
  async run(argv) {
    const { values } = parse("list", argv, { json: { type: "boolean", default: false }, local: { type: "boolean", short: "l", default: false }, remote: { type: "string", short: "r" }, "tcp-port": { type: "string" } });
    if (values.help) {
      await printHelp(help);
      return ExitCode.OK;
    }
    if (values.remote !== undefined) {
      if (values.local) throw new UsageError("list: give -l or -r HOST, not both");
      const port = parseTcpPort("list", values["tcp-port"]);
      if (!/^\[?[A-Za-z0-9._:%-]+\]?$/.test(values.remote)) throw new UsageError(`list: -r takes a host name or address, not "${values.remote}"`);
      return listRemote(values.remote.replace(/^\[(.*)\]$/, "$1"), port, values.json === true);
    }
    if (values["tcp-port"] !== undefined) throw new UsageError("list: --tcp-port goes with -r HOST");
    const devs = exportableDevices(new Sysfs());
    if (values.json) {
      await writeOut(JSON.stringify(devs.map((d) => ({ ...d, state: state(d) })), null, 2) + "\n");
      return ExitCode.OK;
    }
    const lines = devs.map((d) => {
      const name = [d.manufacturer, d.product].filter(Boolean).join(" ") || "-";
      const classes = d.interfaces.map((i) => hex(i.bInterfaceClass, 2)).join(",") || "-";
      return `${d.busid.padEnd(8)} ${hex(d.idVendor, 4)}:${hex(d.idProduct, 4)}  ${d.speed.padStart(5)}  ${(d.driver ?? "-").padEnd(11)} ${state(d).padEnd(9)} if ${classes.padEnd(8)} ${name}${d.serial ? ` (${d.serial})` : ""}${d.isochronous ? "  [iso]" : ""}`;
    });
    await writeOut(lines.length === 0 ? "no exportable USB devices\n" : `${"busid".padEnd(8)} ${"id".padEnd(9)}  speed  ${"driver".padEnd(11)} ${"usbip".padEnd(9)} ${"interfaces".padEnd(11)} name\n` + lines.join("\n") + "\n");
    return ExitCode.OK;
  },
};

async function listRemote(host: string, port: number, json: boolean): Promise<number> {
  const { remoteDevices } = await import("../frontend/remote-list.js");
  const signal = terminationSignal();
  let devs: ListedDevice[];
  try {
    devs = await remoteDevices({ host, port, timeoutMs: TIMEOUT_S * 1000, notice: (t) => makeLogger("list", false).notice(t), noticeMs: 3000, interrupt: signal.promise });
  } finally {
    signal.dispose();
  }
  if (json) {
    await writeOut(JSON.stringify(devs.map((d) => ({ busid: d.busid, path: d.path, idVendor: hex(d.idVendor, 4), idProduct: hex(d.idProduct, 4), speed: speedToString(d.speed), deviceClass: triple(d.bDeviceClass, d.bDeviceSubClass, d.bDeviceProtocol), interfaces: d.interfaces.map((i) => triple(i.bInterfaceClass, i.bInterfaceSubClass, i.bInterfaceProtocol)) })), null, 2) + "\n");
    return ExitCode.OK;
  }
  // usbip list -r's layout (without its usb.ids names)
  const out = ["Exportable USB devices", "======================", ` - ${formatHostPort(host, port).replace(/:\d+$/, "")}`];
  if (devs.length === 0) out.push("   no exportable devices");
  for (const d of devs) {
    out.push(`${d.busid.padStart(11)}: unknown vendor : unknown product (${hex(d.idVendor, 4)}:${hex(d.idProduct, 4)}), ${speedToString(d.speed)} Mbit/s`);
    out.push(`${"".padStart(11)}: ${d.path}`);
    out.push(`${"".padStart(11)}: (${triple(d.bDeviceClass, d.bDeviceSubClass, d.bDeviceProtocol)})`);
    d.interfaces.forEach((i, n) => out.push(`${"".padStart(11)}: ${String(n).padStart(2)} - (${triple(i.bInterfaceClass, i.bInterfaceSubClass, i.bInterfaceProtocol)})`));
    out.push("");
  }
  await writeOut(out.join("\n") + "\n");
  return ExitCode.OK;
}
