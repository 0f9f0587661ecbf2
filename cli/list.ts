/** `usbip-qrexec list [--json]` — exportable local devices. */
import { Sysfs } from "../kernel-glue/sysfs.js";
import { exportableDevices, type UsbDeviceInfo } from "../kernel-glue/usb-devices.js";
import { type Command, parse, writeOut } from "./command.js";
import { ExitCode } from "./errors.js";

const help = `usage: usbip-qrexec list [--json]

List the local USB devices that can be exported (hubs and devices imported through vhci-hcd
are left out): busid, vendor:product, speed, manufacturer / product / serial, interface
classes, driver, and the usbip-host state (available, used = exported, error). Devices with
isochronous endpoints (webcams, audio) are marked "iso: kernel mode only": node-usb cannot
serve them in --mode userspace.`;

const state = (d: UsbDeviceInfo) => (d.usbipStatus === undefined ? "-" : d.usbipStatus === 1 ? "available" : d.usbipStatus === 2 ? "exported" : "error");
const hex = (n: number, w: number) => n.toString(16).padStart(w, "0");

export const listCommand: Command = {
  name: "list",
  help,
  async run(argv) {
    const { values } = parse("list", argv, { json: { type: "boolean", default: false } });
    if (values.help) {
      await writeOut(help + "\n");
      return ExitCode.OK;
    }
    const devs = exportableDevices(new Sysfs());
    if (values.json) {
      await writeOut(JSON.stringify(devs.map((d) => ({ ...d, state: state(d) })), null, 2) + "\n");
      return ExitCode.OK;
    }
    const lines = devs.map((d) => {
      const name = [d.manufacturer, d.product].filter(Boolean).join(" ") || "-";
      const classes = d.interfaces.map((i) => hex(i.bInterfaceClass, 2)).join(",") || "-";
      return `${d.busid.padEnd(8)} ${hex(d.idVendor, 4)}:${hex(d.idProduct, 4)}  ${d.speed.padStart(5)}  ${(d.driver ?? "-").padEnd(11)} ${state(d).padEnd(9)} if ${classes.padEnd(8)} ${name}${d.serial ? ` (${d.serial})` : ""}${d.isochronous ? "  [iso: kernel mode only]" : ""}`;
    });
    await writeOut((lines.length === 0 ? "no exportable USB devices\n" : `${"busid".padEnd(8)} ${"id".padEnd(9)}  speed  ${"driver".padEnd(11)} ${"usbip".padEnd(9)} ${"interfaces".padEnd(11)} name\n` + lines.join("\n") + "\n"));
    return ExitCode.OK;
  },
};
