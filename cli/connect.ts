/** `usbip-qrexec connect --tcp HOST:PORT --busid B [STATEFILE] [--mode kernel|relay]` */
import { guardImport } from "../kernel-glue/orphan-guard.js";
import { connectTcp } from "../frontend/connect-tcp.js";
import { RelayViolationError } from "../protocol/errors.js";
import { makeLogger } from "../shared/log.js";
import { type Command, parse, printHelp } from "./command.js";
import { ExitCode, UsageError } from "./errors.js";
import { parseHostPort } from "./hostport.js";
import { loadPolicy } from "./import.js";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { runDir } from "../shared/rundir.js";

const help = `usage: usbip-qrexec connect --tcp HOST:PORT --busid BUSID [STATEFILE]
         [--mode kernel|relay] [--trace FILE.pcapng] [--policy FILE] [--verbose]

Import BUSID from a usbipd (Linux's, or 'usbip-qrexec serve') over TCP into
vhci-hcd, then behave like 'import' and stay in the foreground. STATEFILE
(default /run/usbip-qrexec/connect-HOST-PORT-BUSID.state) holds the vhci port;
once the device is attached its port and the detach command are printed on
stderr. 'usbip-qrexec detach --statefile STATEFILE' (or 'detach -p PORT'),
SIGTERM or SIGINT end it. The OP_REP_IMPORT reply is checked strictly; a
server that does not answer is announced after 5 s and given up after 30 s.

  kernel mode (default): the TCP socket is handed to vhci-hcd (what 'usbip
  attach' does).
  relay mode: vhci-hcd gets a socketpair and every RET_* from the server is
  validated first (see 'import --help'); --trace and --policy work as there.

Options:
  --tcp HOST:PORT  the server (port defaults to 3240; IPv6 as [::1]:3240)
  --busid B        the device to import (as 'usbip-qrexec list -r HOST' shows)
  --mode M         kernel (default) or relay
  --trace F        (relay) pcapng of every URB; "-" is stdout
  --policy F       (relay) allow/deny by interface class
  --verbose        log each step on stderr
  -h, --help       this text

Needs root (vhci-hcd's sysfs).`;

export const connectCommand: Command = {
  name: "connect",
  help,
  exitWhenDone: true,
  async run(argv) {
    const { values, positionals } = parse("connect", argv, { tcp: { type: "string" }, busid: { type: "string" }, mode: { type: "string", default: "kernel" }, trace: { type: "string" }, policy: { type: "string" }, verbose: { type: "boolean", default: false } }, true);
    if (values.help) {
      await printHelp(help);
      return ExitCode.OK;
    }
    if (values.tcp === undefined || values.busid === undefined) throw new UsageError("connect: --tcp HOST:PORT and --busid BUSID are required");
    if (positionals.length > 1) throw new UsageError("connect: at most one STATEFILE");
    if (values.mode !== "kernel" && values.mode !== "relay") throw new UsageError(`connect: --mode must be kernel or relay, not "${values.mode}"`);
    if ((values.trace !== undefined || values.policy !== undefined) && values.mode !== "relay") throw new UsageError("connect: --trace and --policy need --mode relay");
    if (values.busid.length === 0 || values.busid.length > 31) throw new UsageError("connect: --busid must be 1..31 characters");
    const { host, port } = parseHostPort("connect", values.tcp);
    if (!/^[A-Za-z0-9._:-]+$/.test(values.busid)) throw new UsageError(`connect: --busid "${values.busid}" has characters a busid cannot have`);
    const statefile = positionals[0] ?? path.join(runDir(), `connect-${host.replace(/[^A-Za-z0-9.]/g, "_")}-${port}-${values.busid}.state`);
    if (positionals[0] === undefined) mkdirSync(runDir(), { recursive: true });
    const policy = values.policy === undefined ? undefined : loadPolicy(values.policy, "connect");
    const guard = guardImport(statefile);
    try {
      return await connectTcp({ host, port, busid: values.busid, mode: values.mode, statefile, log: makeLogger("connect", values.verbose === true), trace: values.trace, policy });
    } catch (e) {
      if (e instanceof RelayViolationError) throw e.withPrefix("connect");
      throw e;
    } finally {
      guard.disarm();
    }
  },
};
