/** `usbip-qrexec import STATEFILE [--mode kernel]` — the local process of qubes.USBAttach. */
import { importKernel } from "../frontend/import-kernel.js";
import { reportToAttachService } from "../frontend/attach-report.js";
import { UsbipError } from "../protocol/errors.js";
import { makeLogger } from "../qrexec/log.js";
import { type Command, parse, writeOut } from "./command.js";
import { ExitCode, UsageError } from "./errors.js";

const help = `usage: usbip-qrexec import STATEFILE [--mode kernel] [--verbose]

Import the device the remote qubes.USB service exports, over the qrexec link on fd 0.
Reads the handshake line "<devid> <speed>" (never a byte more), validates it, picks a free
vhci-hcd port of the right hub, asks for one socket ($QREXEC_AGENT_PID, SIGUSR1), attaches
fd 0, writes the port number to STATEFILE, waits until the device enumerated (then SIGHUP
to $SERVICE_ATTACH_PID), and stays until the port is detached ('usbip-qrexec detach
--statefile STATEFILE', the link closing, SIGTERM/SIGINT/SIGHUP). On every exit the port is
freed and STATEFILE removed. When started by qubes.USBAttach ($SERVICE_ATTACH_PID), errors also
go to that call's stderr (/proc/PID/fd/2) with the remote domain ($USBIP_QREXEC_REMOTE_DOMAIN)
and a hint, since qrexec-client-vm discards its own stderr.

Options:
  --mode M     kernel (relay is not available yet)
  --verbose    log each step on stderr (also USBIP_QREXEC_VERBOSE=1)
  -h, --help   this text`;

export const importCommand: Command = {
  name: "import",
  summary: "import the remote device over the qrexec link on fd 0 (qubes.USBAttach)",
  help,
  async run(argv) {
    const { values, positionals } = parse("import", argv, { mode: { type: "string", default: "kernel" }, verbose: { type: "boolean", default: false } }, true);
    if (values.help) {
      await writeOut(help + "\n");
      return ExitCode.OK;
    }
    if (values.mode !== "kernel") throw new UsageError(`import: --mode ${values.mode} is not available in this version (only kernel)`);
    if (positionals.length !== 1) throw new UsageError("import: exactly one STATEFILE is required");
    try {
      return await importKernel({ statefile: positionals[0]!, log: makeLogger("import", values.verbose === true) });
    } catch (e) {
      if (e instanceof UsbipError) reportToAttachService(e.code, e.message);
      throw e;
    }
  },
};
