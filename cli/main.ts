/**
 * usbip-qrexec command-line entry: argument dispatch, exit codes, one-line errors.
 * Set USBIP_QREXEC_DEBUG=1 to get stack traces of unexpected errors.
 */
import { readFileSync } from "node:fs";
import { UsageError, UsbipError } from "../protocol/errors.js";
import { commands } from "./commands.js";
import { latchTerminationSignals } from "../qrexec/agent.js";
import { EXIT_STATUS_HELP, ExitCode, exitCodeOf } from "./errors.js";

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "usage: usbip-qrexec COMMAND [ARGS...]",
    "",
    "USB/IP passthrough between VMs over a qrexec stream.",
    "",
    "Commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Run 'usbip-qrexec COMMAND --help' for a command's options. The usbip(8) forms",
    "'list -r HOST', 'list -l', 'attach -r HOST -b BUSID', 'port', 'detach -p PORT'",
    "work too. 'man usbip-qrexec' has every command's text in one page.",
    "",
    EXIT_STATUS_HELP,
  ].join("\n");
}

let exitWhenDone = false;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    // no command is a usage error: the usage goes to stderr, stdout stays empty for pipes
    process.stderr.write(usage() + "\n");
    return ExitCode.USAGE;
  }
  if (name === "-h" || name === "--help" || name === "help") {
    process.stdout.write(usage() + "\n");
    return ExitCode.OK;
  }
  if (name === "--version" || name === "-V") {
    process.stdout.write(version() + "\n");
    return ExitCode.OK;
  }
  const entry = commands.find((c) => c.name === name);
  if (entry === undefined) throw new UsageError(`unknown command "${name}" (see 'usbip-qrexec --help')`);
  if (entry.latchSignals) latchTerminationSignals();
  const cmd = await entry.load();
  exitWhenDone = cmd.exitWhenDone === true;
  return cmd.run(rest);
}

function report(e: unknown): number {
  // a signal is a clean stop (the command cleaned up on its way out): one line, like any error
  if (e instanceof UsbipError) {
    process.stderr.write(`usbip-qrexec: ${e.message}\n`);
    return exitCodeOf(e);
  }
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`usbip-qrexec: internal error: ${msg.split("\n")[0]}${process.env.USBIP_QREXEC_DEBUG ? `\n${(e as Error).stack ?? ""}` : " (set USBIP_QREXEC_DEBUG=1 for details)"}\n`);
  return ExitCode.FAILURE;
}

// stdout closed early (e.g. `decode ... | head`): stop quietly — unless a trace writes to stdout
// (`--trace -`): it has its own listener, and a reader that went away must not end a relay.
const onStdoutError = (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE" && process.stdout.listenerCount("error") === 1) process.exit(ExitCode.OK);
};
process.stdout.on("error", onStdoutError);

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    if (exitWhenDone) process.exit(code);
  },
  (e: unknown) => {
    process.exitCode = report(e);
    if (exitWhenDone) process.exit(process.exitCode);
  },
);
