/** `usbip-qrexec probe [--json] -- SERVICE...`: enumerate an exported device from userspace. */
import { enumerate } from "../host/enumerate.js";
import { formatLsusb } from "../host/lsusb-format.js";
import { connectService, type ServiceLink } from "../host/service-link.js";
import { InterruptedError, UsbipError, GlueCode } from "../protocol/errors.js";
import { terminationSignal } from "../qrexec/agent.js";
import { UsbHost } from "../host/usb-host.js";
import { type Command, parse, printHelp, writeOut } from "./command.js";
import { ExitCode, UsageError } from "./errors.js";

const help = `usage: usbip-qrexec probe [--json] [--timeout S] -- SERVICE_CMD...
       usbip-qrexec probe [--json] [--timeout S] --stdio

Our own minimal USB host over USB/IP: run SERVICE_CMD (anything that speaks
the backend side of the qrexec link on its stdin/stdout: 'usbip-qrexec export
...', 'qrexec-client-vm sys-usb qubes.USB+2-1', ...), read its handshake,
enumerate the device with GET_DESCRIPTOR and print its device, configuration,
interface and endpoint descriptors and strings like 'lsusb -v'. No root, no
kernel module. With --stdio the link is our own fd 0/1 (the local command of
qrexec-client-vm or qrexec-sim; the report goes to stderr). Replies are
decoded strictly: a malformed one ends the probe with status 2.

Options:
  --json       one JSON object instead of text
  --stdio      the link is fd 0/1, no SERVICE_CMD
  --timeout S  seconds the whole probe may take, handshake and enumeration
               (default 30); then the service is stopped and the exit is 1
  -h, --help   this text`;

export const probeCommand: Command = {
  name: "probe",
  help,
  exitWhenDone: true,
  async run(argv) {
    const dd = argv.indexOf("--");
    const { values } = parse("probe", dd < 0 ? argv : argv.slice(0, dd), { json: { type: "boolean", default: false }, stdio: { type: "boolean", default: false }, timeout: { type: "string", default: "30" } });
    if (values.help) {
      await printHelp(help);
      return ExitCode.OK;
    }
    const service = dd < 0 ? [] : argv.slice(dd + 1);
    if (values.stdio === (service.length > 0)) throw new UsageError("probe: give either -- SERVICE_CMD... or --stdio (see 'usbip-qrexec probe --help')");
    const timeout = Number(values.timeout);
    if (!(timeout > 0 && timeout <= 86400)) throw new UsageError(`probe: --timeout must be a positive number of seconds, not "${values.timeout}"`);
    // one signal watch for both waits: the handshake and the enumeration
    const stop = terminationSignal();
    const deadline = Date.now() + timeout * 1000;
    let link: ServiceLink;
    try {
      link = await connectService(values.stdio ? "stdio" : service, timeout * 1000, stop.promise);
    } catch (e) {
      stop.dispose();
      throw e;
    }
    const host = new UsbHost(link.handshake.devid, link.input, link.output, link.rest);
    let timer: NodeJS.Timeout | undefined;
    let ok = false;
    try {
      const e = await Promise.race([
        enumerate(host),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new UsbipError(GlueCode.TIMEOUT, `probe: the device did not finish answering within ${timeout} s (--timeout)`)), Math.max(0, deadline - Date.now()));
        }),
        stop.promise.then((s) => {
          throw new InterruptedError(s, "while enumerating the device");
        }),
      ]);
      const hs = { devid: link.handshake.devid, speed: link.handshake.speed };
      const text = values.json ? JSON.stringify({ ...hs, ...e }, (_k, v: unknown) => (v && typeof v === "object" && (v as { type?: string }).type === "Buffer" ? Buffer.from((v as { data: number[] }).data).toString("hex") : v), 2) : formatLsusb(e, hs);
      // with --stdio, fd 1 is the link: the report goes to stderr
      if (values.stdio) process.stderr.write(text + "\n");
      else await writeOut(text + "\n");
      ok = true;
      return ExitCode.OK;
    } finally {
      clearTimeout(timer);
      stop.dispose();
      host.close();
      await link.close(!ok);
    }
  },
};
