/** CLI-level errors: one line on stderr and a stable exit code, never a stack trace. */
import { UsbipError } from "../protocol/errors.js";

/** Exit codes: 0 ok, 1 runtime failure, 2 malformed protocol data, 64 bad usage (EX_USAGE). */
export const ExitCode = { OK: 0, FAILURE: 1, PROTOCOL: 2, USAGE: 64 } as const;

export class CliError extends UsbipError {
  constructor(
    code: string,
    message: string,
    readonly exitCode: number = ExitCode.FAILURE,
  ) {
    super(code, message);
    this.name = "CliError";
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super("USBIP_ERR_USAGE", message, ExitCode.USAGE);
  }
}
