/** `usbip-qrexec export DEVICE [--mode kernel]` — the body of the qubes.USB service. */
import { RelayViolationError } from "../protocol/errors.js";
import { makeLogger } from "../shared/log.js";
import { fuzzMutator } from "./fuzz-option.js";
import { type Command, parse, printHelp } from "./command.js";
import { ExitCode, UsageError } from "./errors.js";

const help = `usage: usbip-qrexec export DEVICE [--mode kernel|relay|userspace]
                            [--trace FILE.pcapng]
                            [--fuzz SPEC|--fuzz-replay F [--no-validate]]
                            [--verbose]
       usbip-qrexec export --virtual hid-keyboard[:TEXT] [--type-delay MS]
       usbip-qrexec export --virtual mass-storage:FILE
       usbip-qrexec export --virtual uac-microphone
       usbip-qrexec export --virtual uvc-camera

Export a local USB device over the qrexec link on fd 0 (the qubes.USB service
body). DEVICE is a busid (2-1, 1-1.4; not an interface like 2-1:1.0) or
0xVVVV.0xPPPP (exactly one device with that vendor:product id).

kernel mode (the default): binds the device to usbip-host, asks the qrexec
agent for one socket ($QREXEC_AGENT_PID, SIGUSR1), sends the handshake line
"<devid> <speed>", hands fd 0 to the kernel and stays until the connection
ends; then disconnects, unbinds, resets and reprobes the device so its
original driver takes it back. Ends on link close, 'usbip-qrexec detach
--busid', SIGTERM, SIGINT or SIGHUP.

relay mode: usbip-host gets one end of a socketpair and every CMD_* from the
frontend is checked before the backend kernel sees it (devid, endpoint present
in the current configuration with that direction and type, lengths within
limits, ISO counts, control wLength equal to the transfer length, unlink of a
submitted seqnum); unlinks are held 100 ms so usbip-host's unlink race (a
use-after-free in Linux 6.1) is not hit. A violation ends the export with
status 2. Works with separate stdin/stdout or the single socket.

userspace mode: no usbip-host; the device is opened with libusb (node-usb),
its kernel drivers detached and its interfaces claimed on a usbfs fd of our
own, and every URB (control, bulk, interrupt, isochronous: webcams and audio,
which 'usbip-qrexec list' marks [iso], at most 128 packets per URB) is
submitted to usbfs by us, from the same poll() loop that reads and writes the
link (CMD_* validated as in relay mode; CMD_UNLINK discards the URB;
SET_CONFIGURATION, SET_INTERFACE, CLEAR_FEATURE(HALT) and port reset done as
usbip-host does them). USBIP_QREXEC_TRANSFERS=libusb runs the non-iso URBs as
libusb transfers instead. A device that is itself imported through vhci-hcd
can be passed on in this mode only (usbip-host refuses it). The device is
reset and its drivers reattached when the export ends.

virtual devices (--virtual, no DEVICE, no root, no kernel module): a device
model served over the link. hid-keyboard[:TEXT] is a boot keyboard that types
TEXT (default "hello from usbip-qrexec\\n") 2 s (--type-delay) after the host
starts polling it; mass-storage:FILE is a USB disk (bulk-only, SCSI) on the
image FILE (a regular file or block device, read-write, 512-byte blocks);
uac-microphone is a USB Audio Class 1 microphone (isochronous IN, 48 kHz,
16-bit stereo) whose sample frame n carries n as a 32-bit counter;
uvc-camera is a USB Video Class 1.0 camera (isochronous IN, high speed,
160x120 YUY2 at 30 frames/s) whose frame f starts with f as a 32-bit number.
Every CMD_* is validated as in relay mode; unlinks cancel the transfer.

Options:
  --mode M         kernel (default), relay or userspace
  --virtual S      export a device model instead of DEVICE (see above)
  --type-delay MS  (hid-keyboard) start typing MS ms after the first poll (2000)
  --trace F        (relay mode) write every URB to F as pcapng (Linux usbmon
                   events, which Wireshark and tshark decode); checked before
                   the device is touched
  --fuzz SPEC      (relay mode; for testing kernels, never for use) mutate the
                   frontend's CMD_* on their way to usbip-host, then validate
                   them: the relay must stop every mutation that breaks a rule.
                   SPEC is SEED[,rate=R][,fields=F+F...], as for import; each
                   mutation is logged ("fuzz: message N (seqnum S) FIELD: OLD
                   -> NEW")
  --fuzz-replay F   (relay mode) make exactly the mutations logged in F (the
                   "fuzz: message …" lines of an earlier run, or some of them)
  --no-validate    (with --fuzz) send the mutated CMD_* to usbip-host
                   unchecked: nothing protects the kernel; --trace records
                   what usbip-host got, each mutation as the packet's comment
  --verbose        log each step on stderr (also USBIP_QREXEC_VERBOSE=1)
  -h, --help       this text

Needs root (sysfs writes).`;

export const exportCommand: Command = {
  name: "export",
  help,
  exitWhenDone: true,
  async run(argv) {
    const { values, positionals } = parse("export", argv, { mode: { type: "string", default: "kernel" }, verbose: { type: "boolean", default: false }, trace: { type: "string" }, virtual: { type: "string" }, "type-delay": { type: "string" }, fuzz: { type: "string" }, "fuzz-replay": { type: "string" }, "no-validate": { type: "boolean", default: false } }, true);
    if (values.help) {
      await printHelp(help);
      return ExitCode.OK;
    }
    if (values.virtual !== undefined) {
      if (positionals.length !== 0) throw new UsageError("export: give either DEVICE or --virtual, not both");
      if (values.trace !== undefined) throw new UsageError("export: --trace is not available with --virtual (trace on the frontend: import --mode relay --trace)");
      if (values.fuzz !== undefined || values["fuzz-replay"] !== undefined) throw new UsageError("export: --fuzz is not available with --virtual (no kernel behind it to fuzz: import --mode relay --fuzz fuzzes the frontend's)");
      const delay = values["type-delay"] === undefined ? undefined : Number(values["type-delay"]);
      if (delay !== undefined && !(Number.isInteger(delay) && delay >= 0 && delay <= 600_000)) throw new UsageError(`export: --type-delay must be 0..600000 milliseconds, not "${values["type-delay"]}"`);
      if (delay !== undefined && !values.virtual.startsWith("hid-keyboard")) throw new UsageError("export: --type-delay is for --virtual hid-keyboard");
      try {
        const { exportVirtual } = await import("../backend/export-virtual.js");
        return await exportVirtual(values.virtual, makeLogger("export", values.verbose === true), delay);
      } catch (e) {
        if (e instanceof UsageError) throw new UsageError(`export: ${e.message}`);
        if (e instanceof RelayViolationError) throw e.withPrefix("export");
        throw e;
      }
    }
    if (values.mode !== "kernel" && values.mode !== "relay" && values.mode !== "userspace") throw new UsageError(`export: --mode must be kernel, relay or userspace, not "${values.mode}"`);
    if (positionals.length !== 1) throw new UsageError("export: exactly one DEVICE is required (a busid like 2-1, or 0xVVVV.0xPPPP)");
    if (values.trace !== undefined && values.mode !== "relay") throw new UsageError("export: --trace needs --mode relay (in kernel mode the kernel reads the link itself)");
    if (values.trace === "-") throw new UsageError("export: --trace - would write into the qrexec link (stdout is the link here); give a file, or a FIFO for a live view");
    if ((values.fuzz !== undefined || values["fuzz-replay"] !== undefined) && values.mode !== "relay") throw new UsageError("export: --fuzz needs --mode relay (the relay is where messages are mutated)");
    const noValidate = values["no-validate"] === true;
    if (noValidate && values.fuzz === undefined && values["fuzz-replay"] === undefined) throw new UsageError("export: --no-validate goes with --fuzz only (the relay always validates)");
    const log = makeLogger("export", values.verbose === true);
    const fuzzing = values.fuzz !== undefined || values["fuzz-replay"] !== undefined;
    const fuzz = fuzzing ? { mutator: await fuzzMutator(values.fuzz, values["fuzz-replay"], log, "export"), validate: !noValidate } : undefined;
    const o = { device: positionals[0]!, log, trace: values.trace, fuzz };
    try {
      // each mode's module (node-usb, the relay) is loaded only when that mode runs: start-up time
      if (values.mode === "relay") return await (await import("../backend/export-relay.js")).exportRelay(o);
      if (values.mode === "userspace") return await (await import("../backend/export-userspace.js")).exportUserspace(o);
      return await (await import("../backend/export-kernel.js")).exportKernel(o);
    } catch (e) {
      if (e instanceof RelayViolationError) throw e.withPrefix("export");
      throw e;
    }
  },
};
