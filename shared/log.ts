/**
 * Lifecycle logging for the long-running commands: one line per event on stderr, prefixed with
 * the command, shown with --verbose or USBIP_QREXEC_VERBOSE=1. Notices and errors always show.
 */
export interface Logger {
  info(msg: string): void;
  /** always shown: what the command is waiting for, when it waits long */
  notice(msg: string): void;
  warn(msg: string): void;
}

export function makeLogger(prefix: string, verbose: boolean): Logger {
  const on = verbose || process.env.USBIP_QREXEC_VERBOSE === "1";
  return {
    info(msg) {
      if (on) process.stderr.write(`usbip-qrexec ${prefix}: ${msg}\n`);
    },
    notice(msg) {
      process.stderr.write(`usbip-qrexec ${prefix}: ${msg}\n`);
    },
    warn(msg) {
      process.stderr.write(`usbip-qrexec ${prefix}: warning: ${msg}\n`);
    },
  };
}

/** How long a wait on the peer goes before it is announced. */
export const WAIT_NOTICE_MS = 5000;

/** Say `text` once if the wait is not over after WAIT_NOTICE_MS; call the result when it is. */
export function waitNotice(log: Logger, text: string, afterMs = WAIT_NOTICE_MS): () => void {
  const t = setTimeout(() => log.notice(text), afterMs);
  t.unref();
  return () => clearTimeout(t);
}
