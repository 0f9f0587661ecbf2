/**
 * usbip-qrexec command-line entry: argument dispatch, exit codes, one-line errors.
 * Set USBIP_QREXEC_DEBUG=1 to get stack traces of unexpected errors.
 */
import { readFileSync } from "node:fs";
import { UsbipError } from "../protocol/errors.js";
import type { Command } from "./command.js";
import { decodeCommand } from "./decode.js";
import { exportCommand } from "./export.js";
import { importCommand } from "./import.js";
import { detachCommand } from "./detach.js";
import { listCommand } from "./list.js";
import { qrexecSimCommand } from "./qrexec-sim.js";
import { pcapCommand } from "./pcap.js";
import { probeCommand } from "./probe.js";
import { demoCommand } from "./demo.js";
import { serveCommand } from "./serve.js";
import { connectCommand } from "./connect.js";
import { benchCommand } from "./bench.js";
import { CliError, ExitCode } from "./errors.js";

const commands: Command[] = [demoCommand, probeCommand, exportCommand, importCommand, detachCommand, serveCommand, connectCommand, listCommand, decodeCommand, pcapCommand, qrexecSimCommand, benchCommand];

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
    "Run 'usbip-qrexec COMMAND --help' for a command's options.",
    "Exit status: 0 ok, 1 failure, 2 malformed USB/IP data, 64 bad usage.",
  ].join("\n");
}

let exitWhenDone = false;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    process.stdout.write(usage() + "\n");
    return name === undefined ? ExitCode.USAGE : ExitCode.OK;
  }
  if (name === "--version" || name === "-V") {
    process.stdout.write(version() + "\n");
    return ExitCode.OK;
  }
  const cmd = commands.find((c) => c.name === name);
  if (cmd === undefined) throw new CliError("USBIP_ERR_USAGE", `unknown command "${name}" (see 'usbip-qrexec --help')`, ExitCode.USAGE);
  exitWhenDone = cmd.exitWhenDone === true;
  return cmd.run(rest);
}

function report(e: unknown): number {
  if (e instanceof CliError) {
    process.stderr.write(`usbip-qrexec: ${e.message}\n`);
    return e.exitCode;
  }
  if (e instanceof UsbipError) {
    process.stderr.write(`usbip-qrexec: ${e.message}\n`);
    return ExitCode.FAILURE;
  }
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`usbip-qrexec: internal error: ${msg.split("\n")[0]}${process.env.USBIP_QREXEC_DEBUG ? `\n${(e as Error).stack ?? ""}` : " (set USBIP_QREXEC_DEBUG=1 for details)"}\n`);
  return ExitCode.FAILURE;
}

// stdout closed early (e.g. `decode ... | head`): stop quietly.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(ExitCode.OK);
});

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
