/** `usbip-qrexec pcap --from-client FILE --from-server FILE -o OUT.pcapng` */
import { statSync } from "node:fs";
import { causalOrder, decodeCapture } from "../protocol/capture.js";
import { UsbipError, RuntimeCode, formatViolation } from "../protocol/errors.js";
import { PcapngTrace } from "../trace/writer.js";
import { type Command, parse, printHelp } from "./command.js";
import { ExitCode, UsageError } from "./errors.js";
import { readInputs, refuseEmpty } from "./input.js";

const help = `usage: usbip-qrexec pcap --from-client FILE --from-server FILE -o OUT.pcapng

Convert a recorded USB/IP connection (one file per direction, as for 'decode')
into a pcapng file of Linux usbmon events (LINKTYPE_USB_LINUX_MMAPPED), which
Wireshark and tshark decode with their USB dissectors (descriptors, SCSI, HID).
Each URB message becomes one event: CMD_SUBMIT a submit, RET_SUBMIT a
completion, CMD_UNLINK an unlink request ('E'), RET_UNLINK the victim's
completion. A recording has no timing: events are ordered causally (each answer
after the command it answers) and stamped 1 us apart, starting at the time the
older input file was last written (now, for stdin). A malformed input writes
the events before the fault and exits 2.

Options:
  --from-client FILE  bytes sent by the client ("-": stdin)
  --from-server FILE  bytes sent by the server ("-": stdin)
  -o, --output OUT    the pcapng file to write ("-": stdout, e.g. for
                      '| wireshark -k -i -' or '| tshark -r -')
  -h, --help          this text`;

export const pcapCommand: Command = {
  name: "pcap",
  help,
  async run(argv) {
    const { values } = parse("pcap", argv, { "from-client": { type: "string" }, "from-server": { type: "string" }, output: { type: "string", short: "o" } });
    if (values.help) {
      await printHelp(help);
      return ExitCode.OK;
    }
    const cf = values["from-client"];
    const sf = values["from-server"];
    const output = values.output;
    if (cf === undefined || sf === undefined || output === undefined) throw new UsageError("pcap: --from-client FILE, --from-server FILE and -o OUT.pcapng are required");
    const inputs = await readInputs("pcap", [cf, sf]);
    refuseEmpty("pcap", [cf, sf], inputs);
    const [client, server] = inputs as [Buffer, Buffer];
    let trace: PcapngTrace;
    try {
      trace = PcapngTrace.open(output);
    } catch (e) {
      throw new UsbipError(RuntimeCode.OUTPUT, `pcap: ${(e as UsbipError).message}`);
    }
    let ts = startMicros([cf, sf]);
    let fault: { from: string; offset: number; rule: string; code: string } | undefined;
    for (const item of causalOrder(decodeCapture(client, server))) {
      if (item.type === "error") fault = { from: item.from, ...item.error };
      else if (trace.record(item.message, item.from === "server" ? { urb: item.urb } : {}, ts)) ts++;
    }
    try {
      await trace.close();
    } catch (e) {
      // `-o - | head`: the reader took what it wanted, as for decode
      if (output === "-" && (e as { code?: string }).code === "EPIPE") return ExitCode.OK;
      throw new UsbipError(RuntimeCode.OUTPUT, `pcap: cannot write ${output}: ${(e as Error).message}`);
    }
    if (fault !== undefined) {
      process.stderr.write(`usbip-qrexec: pcap: ${fault.from} stream malformed: ${formatViolation(fault)}; ${trace.count} events written\n`);
      return ExitCode.PROTOCOL;
    }
    return ExitCode.OK;
  },
};

/** The capture's time: when the older input file was last written, in µs (now for stdin). */
function startMicros(paths: string[]): bigint {
  const times = paths.filter((p) => p !== "-").map((p) => statSync(p).mtimeMs);
  const ms = times.length === paths.length ? Math.min(...times) : Date.now();
  return BigInt(Math.floor(ms)) * 1000n;
}
