/** The shape of a subcommand and the shared argument parsing (node:util parseArgs, strict). */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { EXIT_STATUS_HELP, UsageError } from "./errors.js";

export interface Command {
  name: string;
  /** Full --help text. */
  help: string;
  run(argv: string[]): Promise<number>;
  /**
   * Long-running service commands exit as soon as they are done, even if a handle (the qrexec
   * link's fds, a socket the kernel also holds) would keep the event loop alive.
   */
  exitWhenDone?: boolean;
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parse with unknown options and missing values reported as one-line usage errors. */
export function parse<O extends Options>(cmd: string, argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, strict: true, allowPositionals });
  } catch (e) {
    throw new UsageError(`${cmd}: ${parseErrorText(e)} (see 'usbip-qrexec ${cmd} --help')`);
  }
}

/** node:util parseArgs' errors in our words (its own wording is "Option '--x <value>' argument missing"). */
function parseErrorText(e: unknown): string {
  const msg = e instanceof Error ? e.message.split("\n")[0]! : String(e);
  const code = (e as NodeJS.ErrnoException).code;
  const opt = /'(-{1,2}[^' ]+)/.exec(msg)?.[1];
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && opt !== undefined) {
    if (/argument missing/.test(msg)) return `${opt} needs a value`;
    if (/ambiguous/.test(msg)) return `${opt} needs a value (one that starts with "-" is written ${opt}=-VALUE)`;
    return `${opt} takes no value`;
  }
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && opt !== undefined) return `unknown option ${opt}`;
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") return `unexpected argument ${/'([^']*)'/.exec(msg)?.[1] !== undefined ? JSON.stringify(/'([^']*)'/.exec(msg)![1]) : ""}`.trimEnd();
  return msg;
}

/** A command's --help: its own text, then the exit-code table every command shares. */
export function helpText(help: string): string {
  return `${help}\n\n${EXIT_STATUS_HELP}\n`;
}

/** Print a command's --help on stdout. */
export function printHelp(help: string): Promise<void> {
  return writeOut(helpText(help));
}

/** Write text to stdout, resolving when it has been handed to the OS (backpressure-aware). */
export function writeOut(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (process.stdout.write(text)) resolve();
    else {
      process.stdout.once("drain", resolve);
      process.stdout.once("error", reject);
    }
  });
}
