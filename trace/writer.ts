/**
 * `--trace FILE.pcapng`: every URB as it passes the relay, as a usbmon event in a pcapng file
 * (Wireshark/tshark decode it with their USB dissectors). Writes are appended asynchronously
 * through one write stream; payloads are written as the views the relay already holds.
 */
import { createWriteStream, type WriteStream } from "node:fs";
import type { Message } from "../protocol/messages.js";
import { enhancedPacketBlock, interfaceDescriptionBlock, LINKTYPE_USB_LINUX_MMAPPED, sectionHeaderBlock } from "./pcapng.js";
import { usbmonEvent, type UrbContext } from "./usbmon.js";

export class PcapngTrace {
  private readonly out: WriteStream;
  /** wall-clock microseconds at hrtime 0, so timestamps are wall time with µs resolution */
  private readonly base = BigInt(Date.now()) * 1000n - process.hrtime.bigint() / 1000n;
  count = 0;

  constructor(file: string) {
    this.out = createWriteStream(file);
    this.out.write(sectionHeaderBlock());
    this.out.write(interfaceDescriptionBlock(LINKTYPE_USB_LINUX_MMAPPED));
  }

  /** Record one message; `tsMicros` defaults to the wall clock now. */
  record(m: Message, ctx: UrbContext = {}, tsMicros: bigint = this.base + process.hrtime.bigint() / 1000n): void {
    const ev = usbmonEvent(m, tsMicros, ctx);
    if (ev === undefined) return;
    for (const b of enhancedPacketBlock(tsMicros, ev)) this.out.write(b);
    this.count++;
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => this.out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  }
}
