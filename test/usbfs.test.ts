/**
 * The userspace backend's URB path below node-usb: the usbfs ioctl numbers and struct layout
 * against the C header (compiled with gcc here), koffi's ioctl() and poll() on a FIFO, and the
 * two buffer layouts of an iso URB (USB/IP's offsets, usbfs's back-to-back packets). The
 * transfers themselves are proven in the VM (every userspace-mode scenario).
 */
import test from "ava";
import fc from "fast-check";
import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { UrbType, USBFS_IOCTL, USBFS_URB_LAYOUT, USBFS_URB_ZERO_PACKET } from "../kernel-glue/usbfs.js";
import { libc, POLLIN, POLLOUT } from "../shared/libc.js";
import { Slab } from "../shared/slab.js";
import { gatherIsoOut, packedOffsets, scatterIsoIn, type IsoSlot } from "../usb/iso-layout.js";

test("usbfs ioctl numbers and struct usbdevfs_urb's layout are the kernel header's", (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-usbfs-"));
  try {
    const fields = Object.keys(USBFS_URB_LAYOUT).filter((k) => k !== "size" && k !== "descSize");
    writeFileSync(
      path.join(dir, "h.c"),
      `#include <stdio.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <linux/usbdevice_fs.h>
int main(void) {
${Object.keys(USBFS_IOCTL).map((k) => `  printf("${k} %lu\\n", (unsigned long)USBDEVFS_${k});`).join("\n")}
  printf("size %zu\\n", sizeof(struct usbdevfs_urb));
  printf("descSize %zu\\n", sizeof(struct usbdevfs_iso_packet_desc));
${fields.map((f) => `  printf("${f} %zu\\n", offsetof(struct usbdevfs_urb, ${f}));`).join("\n")}
${Object.keys(UrbType).map((k) => `  printf("TYPE_${k} %d\\n", USBDEVFS_URB_TYPE_${k});`).join("\n")}
  printf("ZERO_PACKET %d\\n", USBDEVFS_URB_ZERO_PACKET);
  return 0;
}
`,
    );
    execFileSync("gcc", ["-o", path.join(dir, "h"), path.join(dir, "h.c")]);
    const got = new Map(
      execFileSync(path.join(dir, "h"), { encoding: "utf8" })
        .trim()
        .split("\n")
        .map((l) => l.split(" ") as [string, string]),
    );
    for (const [k, v] of Object.entries(USBFS_IOCTL)) t.is(v, Number(got.get(k)), `USBDEVFS_${k}`);
    for (const [k, v] of Object.entries(USBFS_URB_LAYOUT)) t.is(v as number, Number(got.get(k)), `usbdevfs_urb.${k}`);
    for (const [k, v] of Object.entries(UrbType)) t.is(v as number, Number(got.get(`TYPE_${k}`)), `USBDEVFS_URB_TYPE_${k}`);
    t.is(USBFS_URB_ZERO_PACKET, Number(got.get("ZERO_PACKET")), "USBDEVFS_URB_ZERO_PACKET");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("koffi's poll() runs off the event loop: times out on an empty FIFO, wakes when a byte arrives; ioctl passes a Buffer's memory", async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-poll-"));
  const fifo = path.join(dir, "f");
  execFileSync("mkfifo", [fifo]);
  const fd = openSync(fifo, "r+"); // Linux opens a FIFO read-write without a peer
  try {
    const c = libc();
    t.is(await c.pollAsync(fd, POLLIN, 50), 0, "nothing to read: timeout");
    t.is((await c.pollAsync(fd, POLLOUT, 1000)) & POLLOUT, POLLOUT, "room to write");
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const woke = c.pollAsync(fd, POLLIN, 10_000);
    setTimeout(() => writeSync(fd, Buffer.from("xyz")), 100);
    t.is((await woke) & POLLIN, POLLIN);
    clearInterval(timer);
    t.true(ticks > 0, "the event loop ran while poll() waited");
    const n = Buffer.alloc(4);
    t.is(c.ioctl(fd, 0x541b /* FIONREAD */, n), 0);
    t.is(n.readInt32LE(0), 3, "FIONREAD wrote into the Buffer");
    t.is(c.ioctl(fd, 0x5401 /* TCGETS on a FIFO */, Buffer.alloc(64)), -1);
    t.is(c.errno(), 25 /* ENOTTY */);
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** packets at increasing, possibly gapped offsets inside a buffer */
const slots = fc.array(fc.tuple(fc.nat(40), fc.nat(64)), { minLength: 1, maxLength: 24 }).map((gl) => {
  const out: IsoSlot[] = [];
  let at = 0;
  for (const [gap, length] of gl) {
    at += gap;
    out.push({ offset: at, length });
    at += length;
  }
  return { packets: out, tbl: at };
});

test("iso OUT: the back-to-back buffer usbfs sends holds each packet's bytes from its USB/IP offset", (t) => {
  t.notThrows(() => fc.assert(
    fc.property(slots, ({ packets, tbl }) => {
      const out = Buffer.from(Array.from({ length: tbl }, (_, i) => (i * 7 + 3) & 0xff));
      const g = gatherIsoOut(packets, out);
      const at = packedOffsets(packets);
      if (g.length !== packets.reduce((n, p) => n + p.length, 0)) return false;
      return packets.every((p, i) => g.subarray(at[i]!, at[i]! + p.length).equals(out.subarray(p.offset, p.offset + p.length)));
    }),
  ));
});

test("iso IN: received bytes go back to each packet's USB/IP offset, only actual_length of them; back-to-back offsets keep usbfs's buffer", (t) => {
  fc.assert(
    fc.property(slots, fc.array(fc.nat(80), { minLength: 24, maxLength: 24 }), ({ packets, tbl }, actualRaw) => {
      const total = packets.reduce((n, p) => n + p.length, 0);
      const packed = Buffer.from(Array.from({ length: total }, (_, i) => (i * 13 + 1) & 0xff));
      const actual = packets.map((p, i) => Math.min(p.length, actualRaw[i]!));
      const data = scatterIsoIn(packets, packed, actual, tbl);
      const at = packedOffsets(packets);
      if (packets.every((p, i) => p.offset === at[i])) return data === packed;
      if (data.length !== tbl) return false;
      // every packet's received bytes at its offset, and nothing else written
      const expect = Buffer.alloc(tbl);
      packets.forEach((p, i) => packed.copy(expect, p.offset, at[i]!, at[i]! + actual[i]!));
      return data.equals(expect);
    }),
  );
  const b = Buffer.from([1, 2, 3, 4]);
  t.is(scatterIsoIn([{ offset: 0, length: 2 }, { offset: 2, length: 2 }], b, [2, 1], 4), b);
  t.deepEqual([...scatterIsoIn([{ offset: 0, length: 2 }, { offset: 4, length: 2 }], b, [1, 2], 6)], [1, 0, 0, 0, 3, 4]);
});

test("libc().address: a view's address is koffi's for that view (backing store + offset), for slab views too", (t) => {
  const koffi = createRequire(import.meta.url)("koffi") as { address(v: unknown): bigint };
  const big = Buffer.allocUnsafeSlow(1 << 16);
  for (const view of [big, big.subarray(1), big.subarray(4096, 8192), new Slab(1 << 16).take(100), Buffer.from("pool")]) t.is(libc().address(view), Number(koffi.address(view)));
});
