/** `usbip-qrexec import STATEFILE [--mode kernel]` — the local process of qubes.USBAttach. */
import { reportToAttachService } from "../frontend/attach-report.js";
import { UsbipError, RelayViolationError, RuntimeCode } from "../protocol/errors.js";
import { parsePolicy, PolicyParseError, type Policy } from "../protocol/policy.js";
import { readFileSync } from "node:fs";
import { makeLogger } from "../shared/log.js";
import { fuzzMutator } from "./fuzz-option.js";
import { guardImport } from "../kernel-glue/orphan-guard.js";
import { type Command, parse, printHelp } from "./command.js";
import { ExitCode, UsageError } from "./errors.js";

const help = `usage: usbip-qrexec import STATEFILE [--mode kernel|relay] [--trace FILE.pcapng]
                            [--policy FILE] [--verbose]
                            [--fuzz SPEC|--fuzz-replay F [--no-validate]]

Import the device the remote qubes.USB service exports, over the qrexec link
on fd 0. Reads the handshake line "<devid> <speed>" (never a byte more; a
silent backend is announced after 5 s and given up after 60 s), validates it,
picks a free vhci-hcd port of the right hub, asks for one socket
($QREXEC_AGENT_PID, SIGUSR1), attaches fd 0, writes the port number to
STATEFILE, waits up to 30 s for the device to enumerate (then SIGHUP to
$SERVICE_ATTACH_PID), and stays until the port is detached ('usbip-qrexec
detach --statefile STATEFILE' or 'detach -p PORT', the link closing,
SIGTERM/SIGINT/SIGHUP). On every exit the port is freed and STATEFILE
removed. Started by qubes.USBAttach ($SERVICE_ATTACH_PID), errors also go to
that call's stderr (/proc/PID/fd/2) with the remote domain
($USBIP_QREXEC_REMOTE_DOMAIN) and a hint: qrexec-client-vm discards its own.

relay mode: vhci-hcd gets one end of a socketpair and every RET_* from the
backend is checked against the outstanding CMD_* before the kernel sees it
(known seqnum answered once, actual_length within the buffer, no payload for
OUT, ISO packet count/offsets/lengths/sums as submitted, error_count, status
from an allow-list). A violation is logged with its rule, seqnum and byte
offset, the port is detached, and the exit status is 2. Works with separate
stdin/stdout or the single socket; no SIGUSR1 is sent.

Options:
  --mode M     kernel (default) or relay
  --trace F    (relay mode) write every URB to F as pcapng (Linux usbmon
               events: Wireshark and tshark decode descriptors, mass-storage
               SCSI, HID); F may be a FIFO for a live view ('mkfifo t;
               wireshark -k -i t'); the path is checked before attaching and
               a write error later stops the trace, not the import
  --policy F   (relay mode) allow or deny the device by interface class; a
               denied configuration is refused before SET_CONFIGURATION (no
               driver binds it) and the import ends with status 2. One rule
               per line, first match wins:
                 default allow|deny
                 allow|deny CLASS[/SUBCLASS[/PROTOCOL]]   (hex: deny 03/01/01)
                 allow|deny NAME   (hid, hid-keyboard, hid-mouse,
                   mass-storage, audio, video, printer, smart-card, cdc,
                   cdc-data, hub, wireless, vendor-specific)
  --fuzz SPEC  (relay mode; for testing kernels, never for use) mutate the
               backend's RET_* on their way to vhci-hcd, then validate them:
               the relay must stop every mutation that breaks a rule. SPEC is
               SEED[,rate=R][,fields=F+F...]: R the share of messages mutated
               (0..1, default 0.05); fields among status, actual_length,
               number_of_packets, iso, start_frame, error_count, seqnum, ep,
               direction, transfer_flags, truncate, payload, duplicate, drop,
               descriptor (default all). Each mutation is logged: "fuzz:
               message N (seqnum S) FIELD: OLD -> NEW"; the same SEED and
               device behaviour give the same mutations
  --fuzz-replay F  (relay mode) make exactly the mutations logged in F (the
               "fuzz: message …" lines of an earlier run, or some of them)
               instead of drawing them: a finding replayed, or shrunk
  --no-validate  (with --fuzz) send the mutated RET_* to vhci-hcd unchecked:
               nothing protects the kernel (no --policy or port move);
               --trace records what vhci-hcd got, each mutation as the
               packet's comment
  --verbose    log each step on stderr (also USBIP_QREXEC_VERBOSE=1)
  -h, --help   this text`;

export const importCommand: Command = {
  name: "import",
  help,
  exitWhenDone: true,
  async run(argv) {
    const { values, positionals } = parse("import", argv, { mode: { type: "string", default: "kernel" }, verbose: { type: "boolean", default: false }, trace: { type: "string" }, policy: { type: "string" }, fuzz: { type: "string" }, "fuzz-replay": { type: "string" }, "no-validate": { type: "boolean", default: false } }, true);
    if (values.help) {
      await printHelp(help);
      return ExitCode.OK;
    }
    if (values.mode !== "kernel" && values.mode !== "relay") throw new UsageError(`import: --mode must be kernel or relay, not "${values.mode}"`);
    if (positionals.length !== 1) throw new UsageError("import: exactly one STATEFILE is required");
    if (values.trace !== undefined && values.mode !== "relay") throw new UsageError("import: --trace needs --mode relay (in kernel mode the kernel reads the link itself)");
    if (values.trace === "-") throw new UsageError("import: --trace - would write into the qrexec link (stdout is the link here); give a file, or a FIFO for a live view");
    if (values.policy !== undefined && values.mode !== "relay") throw new UsageError("import: --policy needs --mode relay (in kernel mode the kernel reads the link itself)");
    if ((values.fuzz !== undefined || values["fuzz-replay"] !== undefined) && values.mode !== "relay") throw new UsageError("import: --fuzz needs --mode relay (the relay is where messages are mutated)");
    const noValidate = values["no-validate"] === true;
    if (noValidate && values.fuzz === undefined && values["fuzz-replay"] === undefined) throw new UsageError("import: --no-validate goes with --fuzz only (the relay always validates)");
    if (noValidate && values.policy !== undefined) throw new UsageError("import: --no-validate has no relay: no --policy");
    const policy = values.policy === undefined ? undefined : loadPolicy(values.policy);
    const log = makeLogger("import", values.verbose === true);
    const fuzzing = values.fuzz !== undefined || values["fuzz-replay"] !== undefined;
    const fuzz = fuzzing ? { mutator: await fuzzMutator(values.fuzz, values["fuzz-replay"], log, "import"), validate: !noValidate } : undefined;
    const guard = guardImport(positionals[0]!);
    try {
      const o = { statefile: positionals[0]!, log, trace: values.trace, policy, fuzz };
      // the relay's modules are loaded only in relay mode: start-up time
      return await (values.mode === "relay" ? (await import("../frontend/import-relay.js")).importRelay(o) : (await import("../frontend/import-kernel.js")).importKernel(o));
    } catch (e) {
      if (e instanceof UsbipError) reportToAttachService(e.code, e.message);
      if (e instanceof RelayViolationError) throw e.withPrefix("import");
      throw e;
    } finally {
      guard.disarm();
    }
  },
};

export function loadPolicy(file: string, cmd = "import"): Policy {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UsbipError(RuntimeCode.INPUT, `${cmd}: cannot read the policy ${file}: ${(e as NodeJS.ErrnoException).code}`);
  }
  try {
    return parsePolicy(text);
  } catch (e) {
    if (e instanceof PolicyParseError) throw new UsageError(`${cmd}: policy ${file}: ${e.message}`);
    throw e;
  }
}
