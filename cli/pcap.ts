/** `usbip-qrexec pcap --from-client FILE --from-server FILE -o OUT.pcapng` */
import { readFile } from "node:fs/promises";
import { ClientStreamDecoder } from "../protocol/client-decoder.js";
import { ServerStreamDecoder } from "../protocol/server-decoder.js";
import { detectClientPhase, detectServerPhase } from "../protocol/capture.js";
import { UrbTable } from "../protocol/urb-table.js";
import type { ClientMessage } from "../protocol/messages.js";
import { PcapngTrace } from "../trace/writer.js";
import { type Command, parse, writeOut } from "./command.js";
import { CliError, ExitCode, UsageError } from "./errors.js";

const help = `usage: usbip-qrexec pcap --from-client FILE --from-server FILE -o OUT.pcapng

Convert a recorded USB/IP connection (one file per direction, as for 'decode') into a pcapng
file of Linux usbmon events (LINKTYPE_USB_LINUX_MMAPPED), which Wireshark and tshark decode with
their USB dissectors (descriptors, mass-storage SCSI, HID). Each URB message becomes one event:
CMD_SUBMIT a submit, RET_SUBMIT a completion, CMD_UNLINK an unlink request ('E'), RET_UNLINK
the victim's completion. The recording has no timing: events are ordered causally (each answer
after the command it answers) and stamped 1 µs apart.

Exit status: 0 written; 2 the input is malformed (the events before the fault are written);
1 a file cannot be read or written; 64 bad arguments.`;

export const pcapCommand: Command = {
  name: "pcap",
  help,
  async run(argv) {
    const { values } = parse("pcap", argv, { "from-client": { type: "string" }, "from-server": { type: "string" }, output: { type: "string", short: "o" } });
    if (values.help) {
      await writeOut(help + "\n");
      return ExitCode.OK;
    }
    const cf = values["from-client"];
    const sf = values["from-server"];
    if (cf === undefined || sf === undefined || values.output === undefined) throw new UsageError("pcap: --from-client FILE, --from-server FILE and -o OUT.pcapng are required");
    const read = async (f: string) => {
      try {
        return await readFile(f);
      } catch (e) {
        throw new CliError("USBIP_ERR_INPUT", `pcap: cannot read ${f}: ${(e as NodeJS.ErrnoException).code}`);
      }
    };
    const [client, server] = await Promise.all([read(cf), read(sf)]);
    const trace = new PcapngTrace(values.output);
    const table = new UrbTable(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    const phase = detectClientPhase(client);
    const cd = new ClientStreamDecoder({ table, phase, limits: { maxOutstanding: Number.MAX_SAFE_INTEGER, maxOutstandingBytes: Number.MAX_SAFE_INTEGER } });
    const cmds: ClientMessage[] = cd.feed(client);
    let ts = 0n;
    let next = 0;
    const emitClientUpTo = (seqnum: number | undefined) => {
      while (next < cmds.length) {
        const m = cmds[next++]!;
        trace.record(m, {}, ts++);
        if ("seqnum" in m && m.seqnum === seqnum) return;
      }
    };
    const sd = new ServerStreamDecoder({ table, phase: detectServerPhase(server, phase) });
    sd.push(server);
    for (let m = sd.next(); m !== null; m = sd.next()) {
      if (m.kind === "RET_SUBMIT" || m.kind === "RET_UNLINK") {
        emitClientUpTo(m.seqnum);
        trace.record(m, { urb: sd.lastSubmit }, ts++);
      }
    }
    emitClientUpTo(undefined);
    await trace.close().catch((e: Error) => {
      throw new CliError("USBIP_ERR_OUTPUT", `pcap: cannot write ${values.output}: ${e.message}`);
    });
    const err = cd.error ?? sd.end();
    if (err !== null) {
      process.stderr.write(`usbip-qrexec: pcap: malformed at byte ${err.offset}: ${err.rule} (${err.code}); ${trace.count} events written\n`);
      return ExitCode.PROTOCOL;
    }
    return ExitCode.OK;
  },
};
