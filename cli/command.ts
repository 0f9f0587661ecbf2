/** The shape of a subcommand and the shared argument parsing (node:util parseArgs, strict). */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./errors.js";

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
    const msg = e instanceof Error ? e.message.split("\n")[0]! : String(e);
    throw new UsageError(`${cmd}: ${msg.replace(/^Unknown option/, "unknown option")} (see 'usbip-qrexec ${cmd} --help')`);
  }
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
