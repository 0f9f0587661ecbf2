/** `usbip-qrexec serve --tcp HOST:PORT [DEVICE...] [--virtual SPEC]...` */
import { serveTcp } from "../backend/serve-tcp.js";

import { makeLogger } from "../shared/log.js";
import { type Command, parse, printHelp } from "./command.js";
import { ExitCode, UsageError } from "./errors.js";
import { parseListenAddress } from "./hostport.js";

const help = `usage: usbip-qrexec serve --tcp [HOST:]PORT [DEVICE...] [--virtual SPEC]...
                          [--mode kernel|userspace] [--verbose]

A usbipd-compatible server: Linux's 'usbip list -r HOST' lists the devices
and 'usbip attach -r HOST -b BUSID' imports one, as does 'usbip-qrexec
connect' (or 'attach').
  --virtual SPEC  a device model (hid-keyboard[:TEXT], mass-storage:FILE,
                  uac-microphone or uvc-camera, see 'export --help'); the Nth
                  one is listed as virtual-N
  DEVICE          a local device (busid or 0xVVVV.0xPPPP), exported in kernel
                  mode: bound to usbip-host when imported, the TCP socket
                  handed to the kernel, given back to its driver when the
                  connection ends (needs root); with --mode userspace served
                  from userspace through usbfs instead (see 'export --help')
One connection per device: an imported device is refused to others with
ST_DEV_BUSY, an unknown busid with ST_NODEV. Runs until SIGTERM or SIGINT.
Prints "listening on HOST:PORT" on stderr once it listens.

Options:
  --tcp [HOST:]PORT  where to listen: a bare PORT listens on every address
                     (IPv6 and IPv4) as usbipd does; HOST:PORT on that
                     address ([::1]:3240 for IPv6); port 0 picks a free one;
                     3240 is usbipd's
  --mode M           how DEVICE arguments are served: kernel (default) or
                     userspace
  --verbose          log connections and sessions on stderr
  -h, --help         this text`;

export const serveCommand: Command = {
  name: "serve",
  help,
  exitWhenDone: true,
  async run(argv) {
    const { values, positionals } = parse("serve", argv, { tcp: { type: "string" }, virtual: { type: "string", multiple: true, default: [] }, mode: { type: "string", default: "kernel" }, verbose: { type: "boolean", default: false } }, true);
    if (values.help) {
      await printHelp(help);
      return ExitCode.OK;
    }
    if (values.tcp === undefined) throw new UsageError("serve: --tcp [HOST:]PORT is required");
    const { host, port } = parseListenAddress("serve", values.tcp);
    if (values.mode !== "kernel" && values.mode !== "userspace") throw new UsageError(`serve: --mode must be kernel or userspace, not "${values.mode}"`);
    if (values.virtual.length + positionals.length === 0) throw new UsageError("serve: nothing to serve: give DEVICE arguments and/or --virtual SPEC");
    try {
      return await serveTcp({ host, port, virtual: values.virtual, devices: positionals, deviceMode: values.mode, log: makeLogger("serve", values.verbose === true), onListening: (_p, where) => process.stderr.write(`usbip-qrexec serve: listening on ${where}\n`) });
    } catch (e) {
      if (e instanceof UsageError) throw new UsageError(`serve: ${e.message}`);
      throw e;
    }
  },
};
