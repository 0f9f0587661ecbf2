/** `usbip-qrexec decode --from-client FILE --from-server FILE [--format ndjson|text]` */
import { formatViolation } from "../protocol/errors.js";
import { causalOrder, decodeCapture } from "../protocol/capture.js";
import { statusName, opStatusName } from "../protocol/constants.js";
import { summarize, type MessageRecord } from "../protocol/summary.js";
import { type Command, parse, printHelp, writeOut } from "./command.js";
import { ExitCode, UsageError } from "./errors.js";
import { readInputs, refuseEmpty } from "./input.js";

const help = `usage: usbip-qrexec decode --from-client FILE --from-server FILE
                           [--format ndjson|text]

Decode a recorded USB/IP connection: one file per direction (client = the
importing side, vhci-hcd or 'usbip attach'; server = the exporting side). Works
for TCP sessions (OP phase, then URBs) and qrexec sessions (handshake line,
then URBs); the phase is detected. FILE "-" is standard input (one of the two).

  ndjson  one object per message in stream order, the client stream first:
          {"from","kind","seqnum","devid","direction","ep","status",
          "transferFlags","transferBufferLength","actualLength",
          "numberOfPackets","unlinkSeqnum","payloadBytes","offset"}; fields a
          kind does not have are omitted; OP_REP_DEVLIST adds "devices",
          OP_*_IMPORT "busid", HANDSHAKE "speed". RET_* show the
          devid/direction/ep of the CMD they answer (0 on the wire).
  text    one aligned line per message, for people, in causal order (each
          answer after the command it answers).

A malformed stream prints the messages before the fault, then one line naming
the stream, the byte offset and the rule broken, and exits 2. Two empty files
are an error (exit 1): most likely the wrong files.

Options:
  --from-client FILE   bytes sent by the client ("-": stdin)
  --from-server FILE   bytes sent by the server ("-": stdin)
  --format F           ndjson (default) or text
  -h, --help           this text`;

export const decodeCommand: Command = {
  name: "decode",
  help,
  async run(argv) {
    const { values } = parse("decode", argv, {
      "from-client": { type: "string" },
      "from-server": { type: "string" },
      format: { type: "string", default: "ndjson" },
    });
    if (values.help) {
      await printHelp(help);
      return ExitCode.OK;
    }
    const clientPath = values["from-client"];
    const serverPath = values["from-server"];
    if (clientPath === undefined || serverPath === undefined) throw new UsageError("decode: --from-client FILE and --from-server FILE are both required");
    const format = values.format;
    if (format !== "ndjson" && format !== "text") throw new UsageError(`decode: --format must be ndjson or text, not "${format}"`);
    const inputs = await readInputs("decode", [clientPath, serverPath]);
    refuseEmpty("decode", [clientPath, serverPath], inputs);
    const [client, server] = inputs as [Buffer, Buffer];

    const fmt = format === "ndjson" ? (r: MessageRecord) => JSON.stringify(r) : textLine;
    let out = format === "text" ? textHeader() + "\n" : "";
    const items = decodeCapture(client, server);
    for (const item of format === "text" ? causalOrder(items) : items) {
      if (item.type === "error") {
        const e = item.error;
        const p = item.from === "client" ? clientPath : serverPath;
        const file = p === "-" ? "stdin" : p;
        out += format === "ndjson"
          ? JSON.stringify({ from: item.from, error: e.code, offset: e.offset, rule: e.rule, ...(e.seqnum === undefined ? {} : { seqnum: e.seqnum }) }) + "\n"
          : `${"ERROR".padEnd(6)} ${item.from.padEnd(6)} ${String(e.offset).padStart(9)} ${e.code}: ${e.rule}\n`;
        await writeOut(out);
        process.stderr.write(`usbip-qrexec: decode: ${item.from} stream ${file}: malformed: ${formatViolation(e)}\n`);
        return ExitCode.PROTOCOL;
      }
      const r = summarize(item.message, item.from, item.offset, item.from === "server" ? item.matched : undefined);
      out += fmt(r);
      if (format === "text" && item.message.kind === "OP_REP_DEVLIST") {
        const devs = item.message.devices;
        out += ` ${devs.length} device${devs.length === 1 ? "" : "s"}` + devs.map((d) => `; ${d.busid} ${hex4(d.idVendor)}:${hex4(d.idProduct)} ${d.bNumInterfaces} interfaces`).join("");
      }
      out += "\n";
      if (out.length > 1 << 16) {
        await writeOut(out);
        out = "";
      }
    }
    await writeOut(out);
    return ExitCode.OK;
  },
};

const hex4 = (n: number) => n.toString(16).padStart(4, "0");

function textHeader(): string {
  return `${"kind".padEnd(14)} ${"from".padEnd(6)} ${"offset".padStart(9)} ${"seqnum".padStart(8)} ${"dir".padEnd(3)} ${"ep".padStart(2)} ${"length".padStart(8)} ${"actual".padStart(8)} ${"status".padEnd(12)} details`;
}

function textLine(r: MessageRecord): string {
  const n = (v: number | undefined, w: number) => (v === undefined ? "-" : String(v)).padStart(w);
  const status = r.status === undefined ? "-" : r.kind.startsWith("OP_") ? opStatusName(r.status) : statusName(r.status);
  const details: string[] = [];
  if (r.busid !== undefined) details.push(`busid ${r.busid}`);
  if (r.speed !== undefined) details.push(`speed ${r.speed}`);
  if (r.kind === "HANDSHAKE" || r.kind === "OP_REP_IMPORT") if (r.devid !== undefined) details.push(`devid 0x${r.devid.toString(16).padStart(8, "0")}`);
  if (r.unlinkSeqnum !== undefined) details.push(`unlink ${r.unlinkSeqnum}`);
  if (r.transferFlags !== undefined && r.transferFlags !== 0) details.push(`flags 0x${r.transferFlags.toString(16)}`);
  if (r.numberOfPackets) details.push(`iso ${r.numberOfPackets}`);
  if (r.payloadBytes) details.push(`payload ${r.payloadBytes}`);
  return `${r.kind.padEnd(14)} ${r.from.padEnd(6)} ${n(r.offset, 9)} ${n(r.seqnum, 8)} ${(r.direction ?? "-").padEnd(3)} ${n(r.ep, 2)} ${n(r.transferBufferLength, 8)} ${n(r.actualLength, 8)} ${status.padEnd(12)} ${details.join(", ")}`.trimEnd();
}
