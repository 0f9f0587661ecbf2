/** `usbip-qrexec attach -r HOST -b BUSID [--tcp-port P]`: usbip(8)'s attach, which is our `connect`. */
import { type Command, parse, printHelp } from "./command.js";
import { connectCommand } from "./connect.js";
import { ExitCode, UsageError } from "./errors.js";
import { parseTcpPort } from "./hostport.js";
import { formatHostPort } from "../protocol/host-port.js";

const help = `usage: usbip-qrexec attach -r HOST -b BUSID [--tcp-port P] [STATEFILE]
         [--mode kernel|relay] [--trace F] [--policy F] [--verbose]

usbip(8)'s form of 'usbip-qrexec connect --tcp HOST:P --busid BUSID': import
BUSID from the usbipd on HOST (Linux's, or 'usbip-qrexec serve') and stay in
the foreground until it is detached; everything else is as 'connect --help'
says.

Options:
  -r, --remote HOST   the server (an IPv6 address without brackets is fine)
  -b, --busid BUSID   the device, as 'usbip-qrexec list -r HOST' shows it
  --tcp-port P        the server's port (default 3240, usbipd's)
  --mode, --trace, --policy, --verbose   as for connect
  -h, --help          this text`;

export const attachCommand: Command = {
  name: "attach",
  help,
  exitWhenDone: true,
  async run(argv) {
    const { values, positionals } = parse("attach", argv, { remote: { type: "string", short: "r" }, busid: { type: "string", short: "b" }, "tcp-port": { type: "string" }, mode: { type: "string" }, trace: { type: "string" }, policy: { type: "string" }, verbose: { type: "boolean", default: false } }, true);
    if (values.help) {
      await printHelp(help);
      return ExitCode.OK;
    }
    if (values.remote === undefined || values.busid === undefined) throw new UsageError("attach: -r HOST and -b BUSID are required");
    const port = parseTcpPort("attach", values["tcp-port"]);
    const args = ["--tcp", formatHostPort(values.remote.replace(/^\[(.*)\]$/, "$1"), port), "--busid", values.busid, ...positionals];
    for (const k of ["mode", "trace", "policy"] as const) if (values[k] !== undefined) args.push(`--${k}`, values[k]!);
    if (values.verbose) args.push("--verbose");
    return connectCommand.run(args);
  },
};
