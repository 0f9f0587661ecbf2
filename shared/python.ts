/** The python3 that runs our helpers (kernel-glue/helpers, the qrexec agent simulation): USBIP_QREXEC_PYTHON, else python3 from PATH. Read at each spawn. */
export function python(): string {
  return process.env.USBIP_QREXEC_PYTHON ?? "python3";
}
