/**
 * The commands, in --help order, with their one-line summaries: main.ts dispatches on it and
 * scripts/manpage.mjs builds usbip-qrexec(8) from it and each command's --help text. Each
 * command's module is loaded only when it runs: a qrexec service starts one command, and loading
 * all of them (node-usb, the relay, the device models) costs start-up time on every attach.
 */
import { existsSync } from "node:fs";
import type { Command } from "./command.js";

export interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<Command>;
  /** false when this installation does not ship the command (bench: a source checkout only) */
  available?(): boolean;
  /** a service whose waits all end on a signal: signals are latched before it loads (qrexec/agent.ts) */
  latchSignals?: boolean;
}

/** the benchmarks live in dist/bench of a source checkout; the packages ship the CLI only */
const benchShipped = () => existsSync(new URL("../bench/relay.js", import.meta.url));

const all: CommandEntry[] = [
  { name: "demo", latchSignals: true, summary: "a virtual disk through qrexec-sim and the relay, checksummed", load: async () => (await import("./demo.js")).demoCommand },
  { name: "probe", latchSignals: true, summary: "enumerate an exported device from userspace (lsusb -v style)", load: async () => (await import("./probe.js")).probeCommand },
  { name: "export", latchSignals: true, summary: "export a local (or --virtual) device over qrexec (qubes.USB)", load: async () => (await import("./export.js")).exportCommand },
  { name: "import", latchSignals: true, summary: "import the remote device over qrexec (qubes.USBAttach)", load: async () => (await import("./import.js")).importCommand },
  { name: "detach", summary: "end an import (--statefile, -p PORT) or export (--busid, --all)", load: async () => (await import("./detach.js")).detachCommand },
  { name: "port", summary: "list the imported devices (as usbip port)", load: async () => (await import("./port.js")).portCommand },
  { name: "serve", latchSignals: true, summary: "serve devices over TCP like usbipd (local or virtual)", load: async () => (await import("./serve.js")).serveCommand },
  { name: "connect", latchSignals: true, summary: "import a device from a usbipd over TCP (kernel or relay mode)", load: async () => (await import("./connect.js")).connectCommand },
  { name: "attach", latchSignals: true, summary: "connect as usbip(8) says it: attach -r HOST -b BUSID", load: async () => (await import("./attach.js")).attachCommand },
  { name: "list", summary: "exportable local devices (-l), or a usbipd's (-r HOST)", load: async () => (await import("./list.js")).listCommand },
  { name: "decode", summary: "decode a recorded USB/IP connection (ndjson or text)", load: async () => (await import("./decode.js")).decodeCommand },
  { name: "pcap", summary: "a recorded USB/IP connection as pcapng for Wireshark", load: async () => (await import("./pcap.js")).pcapCommand },
  { name: "qrexec-sim", summary: "run a local command and a service connected as by qrexec", load: async () => (await import("./qrexec-sim.js")).qrexecSimCommand },
  { name: "bench", summary: "the codec, relay (and --vm: real-kernel) benchmarks", load: async () => (await import("./bench.js")).benchCommand, available: benchShipped },
];

/** The commands this installation has. */
export const commands: CommandEntry[] = all.filter((c) => c.available?.() ?? true);
