/**
 * usbip-qrexec command-line entry: argument dispatch, exit codes, one-line errors.
 * Set USBIP_QREXEC_DEBUG=1 to get stack traces of unexpected errors.
 */
import { readFileSync } from "node:fs";
import { UsbipError } from "../protocol/errors.js";
import type { Command } from "./command.js";
import { CliError, ExitCode } from "./errors.js";

/**
 * The commands, in --help order. Each one's module is loaded only when it runs: a qrexec service
 * starts one command, and loading all of them (node-usb, the relay, the device models) costs
 * start-up time on every attach — a second or more under an emulator.
 */
const commands: { name: string; summary: string; load(): Promise<Command> }[] = [
  { name: "demo", summary: "run a virtual USB disk through qrexec-sim and the relay, read/write it with checksums (no root)", load: async () => (await import("./demo.js")).demoCommand },
  { name: "probe", summary: "enumerate an exported device from userspace and print its descriptors (lsusb -v style)", load: async () => (await import("./probe.js")).probeCommand },
  { name: "export", summary: "export a local USB device (or a --virtual one) over the qrexec link on fd 0 (qubes.USB)", load: async () => (await import("./export.js")).exportCommand },
  { name: "import", summary: "import the remote device over the qrexec link on fd 0 (qubes.USBAttach)", load: async () => (await import("./import.js")).importCommand },
  { name: "detach", summary: "end an import (--statefile) or an export (--busid)", load: async () => (await import("./detach.js")).detachCommand },
  { name: "serve", summary: "serve devices over TCP like usbipd (virtual models, local devices)", load: async () => (await import("./serve.js")).serveCommand },
  { name: "connect", summary: "import a device from a usbipd over TCP (kernel or relay mode)", load: async () => (await import("./connect.js")).connectCommand },
  { name: "list", summary: "list exportable local USB devices", load: async () => (await import("./list.js")).listCommand },
  { name: "decode", summary: "decode a recorded USB/IP connection (ndjson or text)", load: async () => (await import("./decode.js")).decodeCommand },
  { name: "pcap", summary: "convert a recorded USB/IP connection to pcapng (usbmon) for Wireshark", load: async () => (await import("./pcap.js")).pcapCommand },
  { name: "qrexec-sim", summary: "run a local command and a service connected like qrexec does", load: async () => (await import("./qrexec-sim.js")).qrexecSimCommand },
  { name: "bench", summary: "run the codec, relay (and --vm: real-kernel throughput) benchmarks", load: async () => (await import("./bench.js")).benchCommand },
];

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "usage: usbip-qrexec COMMAND [ARGS...]",
    "",
    "USB/IP passthrough between VMs over a qrexec stream.",
    "",
    "Commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Run 'usbip-qrexec COMMAND --help' for a command's options.",
    "Exit status: 0 ok, 1 failure, 2 malformed USB/IP data, 64 bad usage.",
  ].join("\n");
}

let exitWhenDone = false;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    process.stdout.write(usage() + "\n");
    return name === undefined ? ExitCode.USAGE : ExitCode.OK;
  }
  if (name === "--version" || name === "-V") {
    process.stdout.write(version() + "\n");
    return ExitCode.OK;
  }
  const entry = commands.find((c) => c.name === name);
  if (entry === undefined) throw new CliError("USBIP_ERR_USAGE", `unknown command "${name}" (see 'usbip-qrexec --help')`, ExitCode.USAGE);
  const cmd = await entry.load();
  exitWhenDone = cmd.exitWhenDone === true;
  return cmd.run(rest);
}

function report(e: unknown): number {
  if (e instanceof CliError) {
    process.stderr.write(`usbip-qrexec: ${e.message}\n`);
    return e.exitCode;
  }
  if (e instanceof UsbipError) {
    process.stderr.write(`usbip-qrexec: ${e.message}\n`);
    return ExitCode.FAILURE;
  }
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`usbip-qrexec: internal error: ${msg.split("\n")[0]}${process.env.USBIP_QREXEC_DEBUG ? `\n${(e as Error).stack ?? ""}` : " (set USBIP_QREXEC_DEBUG=1 for details)"}\n`);
  return ExitCode.FAILURE;
}

// stdout closed early (e.g. `decode ... | head`): stop quietly.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(ExitCode.OK);
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    if (exitWhenDone) process.exit(code);
  },
  (e: unknown) => {
    process.exitCode = report(e);
    if (exitWhenDone) process.exit(process.exitCode);
  },
);
