/**
 * Lifecycle logging for the long-running commands: one line per event on stderr, prefixed with
 * the command, shown with --verbose or USBIP_QREXEC_VERBOSE=1. Errors always show.
 */
export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
}

export function makeLogger(prefix: string, verbose: boolean): Logger {
  const on = verbose || process.env.USBIP_QREXEC_VERBOSE === "1";
  return {
    info(msg) {
      if (on) process.stderr.write(`usbip-qrexec ${prefix}: ${msg}\n`);
    },
    warn(msg) {
      process.stderr.write(`usbip-qrexec ${prefix}: warning: ${msg}\n`);
    },
  };
}
