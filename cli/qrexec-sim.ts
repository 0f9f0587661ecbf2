/** `usbip-qrexec qrexec-sim [--link socket|pipes|direct] -- LOCAL... -- SERVICE...` */
import { makeLogger } from "../shared/log.js";
import { runQrexecSim } from "../qrexec/sim.js";
import { type Command, parse, printHelp } from "./command.js";
import { ExitCode, UsageError } from "./errors.js";

const help = `usage: usbip-qrexec qrexec-sim [--link socket|pipes|direct] [--verbose]
                               -- LOCAL_CMD... -- SERVICE_CMD...

Run LOCAL_CMD and SERVICE_CMD connected the way qrexec-client-vm connects a
local program to a remote service, so a whole export/import flow runs on one
machine, e.g.
  usbip-qrexec qrexec-sim -- usbip-qrexec import /run/st \\
                          -- usbip-qrexec export 1-1

Each side gets its own $QREXEC_AGENT_PID. When one side exits, its end of the
link closes and the other side reads EOF; SIGINT or SIGTERM to the simulator
ends both sides.

Options:
  --link socket  (default) fd 0 is a Unix stream socket and, after the side
                 sends SIGUSR1 to its agent, carries both directions (what the
                 kernel modes need)
  --link pipes   fd 0 and fd 1 are pipes; SIGUSR1 changes nothing
  --link direct  one socketpair, each side's end is its fd 0 and fd 1, nothing
                 is copied by the simulator (the fastest link, for benchmarks)
  --verbose      log the link's events on stderr
  -h, --help     this text

Its own exit status is SERVICE_CMD's if that is not 0, else LOCAL_CMD's.`;

export const qrexecSimCommand: Command = {
  name: "qrexec-sim",
  help,
  async run(argv) {
    const first = argv.indexOf("--");
    const opts = first < 0 ? argv : argv.slice(0, first);
    const { values } = parse("qrexec-sim", opts, { link: { type: "string", default: "socket" }, verbose: { type: "boolean", default: false } });
    if (values.help) {
      await printHelp(help);
      return ExitCode.OK;
    }
    if (values.link !== "socket" && values.link !== "pipes" && values.link !== "direct") throw new UsageError(`qrexec-sim: --link must be socket, pipes or direct, not "${values.link}"`);
    const rest = first < 0 ? [] : argv.slice(first + 1);
    const second = rest.indexOf("--");
    const local = second < 0 ? [] : rest.slice(0, second);
    const service = second < 0 ? [] : rest.slice(second + 1);
    if (local.length === 0 || service.length === 0) throw new UsageError("qrexec-sim: give both commands: -- LOCAL_CMD... -- SERVICE_CMD...");
    return runQrexecSim(local, service, values.link, makeLogger("qrexec-sim", values.verbose === true));
  },
};
