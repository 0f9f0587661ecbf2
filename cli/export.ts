/** `usbip-qrexec export DEVICE [--mode kernel]` — the body of the qubes.USB service. */
import { exportKernel } from "../backend/export-kernel.js";
import { makeLogger } from "../qrexec/log.js";
import { type Command, parse, writeOut } from "./command.js";
import { ExitCode, UsageError } from "./errors.js";

const help = `usage: usbip-qrexec export DEVICE [--mode kernel] [--verbose]

Export a local USB device over the qrexec link on fd 0 (the qubes.USB service body).
DEVICE is a busid (2-1, 1-1.4; not an interface like 2-1:1.0) or 0xVVVV.0xPPPP (exactly one
device with that vendor:product id).

kernel mode (the default and, in this version, the only mode): binds the device to
usbip-host, asks the qrexec agent for one socket ($QREXEC_AGENT_PID, SIGUSR1), sends the
handshake line "<devid> <speed>", hands fd 0 to the kernel and stays until the connection
ends; then disconnects, unbinds, resets and reprobes the device so its original driver takes
it back. Ends on link close, 'usbip-qrexec detach --busid', SIGTERM, SIGINT or SIGHUP.

Options:
  --mode M     kernel (relay and userspace are not available yet)
  --verbose    log each step on stderr (also USBIP_QREXEC_VERBOSE=1)
  -h, --help   this text

Needs root (sysfs writes) and python3 (kernel-glue/helpers/usbfs.py).`;

export const exportCommand: Command = {
  name: "export",
  summary: "export a local USB device over the qrexec link on fd 0 (qubes.USB)",
  help,
  async run(argv) {
    const { values, positionals } = parse("export", argv, { mode: { type: "string", default: "kernel" }, verbose: { type: "boolean", default: false } }, true);
    if (values.help) {
      await writeOut(help + "\n");
      return ExitCode.OK;
    }
    if (values.mode !== "kernel") throw new UsageError(`export: --mode ${values.mode} is not available in this version (only kernel)`);
    if (positionals.length !== 1) throw new UsageError("export: exactly one DEVICE is required (a busid like 2-1, or 0xVVVV.0xPPPP)");
    return exportKernel({ device: positionals[0]!, log: makeLogger("export", values.verbose === true) });
  },
};
