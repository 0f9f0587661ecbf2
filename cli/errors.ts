/** Exit codes and the text every --help ends with. The error classes are protocol/errors.ts's. */
import { InterruptedError, PeerDataError, UsageError, UsbipError } from "../protocol/errors.js";

export { UsageError } from "../protocol/errors.js";

/**
 * Exit codes, the same in every command: 0 ok, 1 runtime failure, 2 malformed protocol data
 * from the peer (or refused by the relay or policy), 64 bad usage (EX_USAGE), 128+N stopped by
 * signal N before the command was done (130 SIGINT, 143 SIGTERM, 129 SIGHUP).
 */
export const ExitCode = { OK: 0, FAILURE: 1, PROTOCOL: 2, USAGE: 64 } as const;

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

/** 128 + the signal's number, as a shell reports a command a signal stopped. */
export const signalExitCode = (s: NodeJS.Signals): number => 128 + (SIGNAL_NUMBERS[s] ?? 15);

/** The exit status of an error, by its class. */
export function exitCodeOf(e: UsbipError): number {
  if (e instanceof UsageError) return ExitCode.USAGE;
  if (e instanceof InterruptedError) return signalExitCode(e.signal);
  if (e instanceof PeerDataError) return ExitCode.PROTOCOL;
  return ExitCode.FAILURE;
}

/** The exit-code table every --help ends with, the man page and the README repeat. */
export const EXIT_STATUS_HELP = `Exit status:
  0    done (a service: ended by detach, the link closing or a signal)
  1    failure: a device, file, kernel module, peer or timeout (as it says)
  2    the peer sent malformed USB/IP data, or the relay or policy refused it
  64   bad usage: unknown option, missing or invalid argument
  130  stopped by SIGINT (143 SIGTERM, 129 SIGHUP) before done; cleaned up`;
