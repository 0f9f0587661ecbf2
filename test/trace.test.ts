/**
 * pcapng tracing: the usbmon events are well-formed pcapng that tshark reads; every URB message
 * of the real capture appears, SCSI over mass storage is decoded, and nothing is malformed at the
 * USB level. (Four Mode Sense(6) responses of the gadget are truncated by the host's allocation
 * length and Wireshark's SCSI dissector calls their payload malformed; the bytes are the kernel's.)
 */
import test from "ava";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { runCli } from "./helpers/cli.js";
import { repoRoot } from "./helpers/fixtures.js";
import { enhancedPacketBlock, interfaceDescriptionBlock, sectionHeaderBlock } from "../trace/pcapng.js";
import { usbmonEvent } from "../trace/usbmon.js";
import { PcapngTrace } from "../trace/writer.js";

const fx = (n: string) => path.join(repoRoot, "test/fixtures/captures", n);
const tmp = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-trace-"));
const haveTshark = spawnSync("sh", ["-c", "command -v tshark"]).status === 0;
const tshark = (args: string[]) => execFileSync("tshark", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });

test("pcapng blocks: lengths, padding and trailing length fields are consistent", (t) => {
  t.is(sectionHeaderBlock().length, 28);
  t.is(sectionHeaderBlock().readUInt32LE(8), 0x1a2b3c4d);
  t.is(interfaceDescriptionBlock(220).readUInt16LE(8), 220);
  const epb = Buffer.concat(enhancedPacketBlock(1_234_567n, [Buffer.alloc(5, 1)]));
  t.is(epb.length % 4, 0);
  t.is(epb.readUInt32LE(4), epb.length);
  t.is(epb.readUInt32LE(epb.length - 4), epb.length);
  t.is(epb.readUInt32LE(20), 5);
  const ev = usbmonEvent({ kind: "CMD_SUBMIT", seqnum: 7, devid: 0x10002, direction: 1, ep: 0, transferFlags: 0x200, transferBufferLength: 18, startFrame: 0, numberOfPackets: 0, interval: 0, setup: Buffer.from("8006000100001200", "hex"), payload: [] }, 0n)!;
  t.is(ev[0]!.length, 64);
  t.is(ev[0]!.toString("latin1", 8, 9), "S");
  t.is(ev[0]![10], 0x80, "ep 0 IN");
  t.is(ev[0]![11], 2, "devnum");
  t.is(ev[0]!.readUInt16LE(12), 1, "busnum");
  t.is(ev[0]!.subarray(40, 48).toString("hex"), "8006000100001200");
});

test("pcap of the real capture: tshark reads every URB message, decodes SCSI, no malformed USB", async (t) => {
  if (!haveTshark) {
    t.log("tshark not installed (apt-get install tshark): pcapng not checked with Wireshark's dissectors");
    if (process.env.CI) t.fail("tshark missing in CI");
    else t.pass();
    return;
  }
  const out = path.join(tmp, "tcp2.pcapng");
  const r = await runCli(["pcap", "--from-client", fx("tcp-2.client-to-server.bin"), "--from-server", fx("tcp-2.server-to-client.bin"), "-o", out]);
  t.is(r.code, 0, r.stderr);
  const d = await runCli(["decode", "--from-client", fx("tcp-2.client-to-server.bin"), "--from-server", fx("tcp-2.server-to-client.bin")]);
  const urbMessages = d.stdout.split("\n").filter((l) => /"kind":"(CMD|RET)_/.test(l)).length;
  const packets = tshark(["-r", out]).trim().split("\n").length;
  t.is(packets, urbMessages, "one event per URB message");
  t.regex(tshark(["-r", out, "-Y", "scsi"]), /Read\(10\)/);
  t.regex(tshark(["-r", out, "-Y", "usb.bDescriptorType == 1"]), /GET DESCRIPTOR Response DEVICE/);
  t.is(tshark(["-r", out, "-Y", "_ws.malformed and not scsi"]).trim(), "");
  t.true(readFileSync(out).length > 1_000_000);
});

test("pcap: usage and a malformed input (events before the fault written, exit 2)", async (t) => {
  const u = await runCli(["pcap", "--from-client", "x"]);
  t.is(u.code, 64);
  const junk = path.join(tmp, "junk.bin");
  execFileSync("sh", ["-c", `head -c 100 ${fx("tcp-2.client-to-server.bin")} > ${junk}`]);
  const r = await runCli(["pcap", "--from-client", junk, "--from-server", fx("tcp-2.server-to-client.bin"), "-o", path.join(tmp, "j.pcapng")]);
  t.is(r.code, 2);
  t.regex(r.stderr, /malformed: USBIP_ERR_\w+ at byte \d+/);
});

test("--trace needs --mode relay", async (t) => {
  for (const cmd of [["import", "s"], ["export", "1-1"]]) {
    const r = await runCli([...cmd, "--trace", "x.pcapng"]);
    t.is(r.code, 64);
    t.regex(r.stderr, /--trace needs --mode relay/);
  }
});

test("a packet comment (the fuzzer's mutation) is an opt_comment option Wireshark shows; the blocks stay consistent", async (t) => {
  const epb = Buffer.concat(enhancedPacketBlock(5n, [Buffer.alloc(3, 7)], 0, "fuzz: message 0 (seqnum 1) status: 0x0 -> 0xffffffb9"));
  t.is(epb.length % 4, 0);
  t.is(epb.readUInt32LE(4), epb.length);
  t.is(epb.readUInt32LE(epb.length - 4), epb.length);
  // after the 3 data bytes and their padding: option code 1, its length, the text
  t.is(epb.readUInt16LE(28 + 4), 1);
  t.is(epb.toString("utf8", 28 + 8, 28 + 8 + epb.readUInt16LE(28 + 6)), "fuzz: message 0 (seqnum 1) status: 0x0 -> 0xffffffb9");
  if (!haveTshark) {
    t.log("tshark not installed: the comment not checked with Wireshark");
    if (process.env.CI) t.fail("tshark missing in CI");
    return;
  }
  const file = path.join(tmp, "comment.pcapng");
  const trace = PcapngTrace.open(file);
  const ret = { kind: "RET_SUBMIT" as const, seqnum: 1, devid: 0, direction: 0, ep: 0, status: -71, actualLength: 0, startFrame: 0, numberOfPackets: 0, errorCount: 0, payload: [] };
  t.true(trace.record(ret, { comment: "fuzz: message 0 (seqnum 1) status: 0x0 -> 0xffffffb9" }));
  t.true(trace.record({ ...ret, seqnum: 2, status: 0 }));
  await trace.close();
  t.is(tshark(["-r", file, "-T", "fields", "-e", "frame.comment", "-e", "usb.urb_status"]).trim(), "fuzz: message 0 (seqnum 1) status: 0x0 -> 0xffffffb9\t-71\n\t0");
});
