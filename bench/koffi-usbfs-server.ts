/**
 * koffi-usbfs-server: bench/c/usbfs-server.c's twin in Node, for the VM data-path bench (the
 * "koffiUsbfsServer" path): the least a Node process does to serve USB/IP from usbfs — one
 * thread, one poll() (koffi, shared/libc.ts) on the link and the usbfs fd, a CMD_SUBMIT read
 * with readUInt32BE and submitted with one USBDEVFS_SUBMITURB, completions reaped with
 * USBDEVFS_REAPURBNDELAY, the RETs of a turn written with one writev. No validation, no
 * statistics, no unlink table beyond a Map: the floor of a userspace backend written in Node,
 * set beside the C one's and ours (backend/serve-link.ts) in one boot.
 * Usage: run in place of `usbip-qrexec export BUSID ...` (an exportWrap in
 * test/vm/guest/bench-modes.ts): BUSID is the argument after "export". Bulk, interrupt and
 * control only. Not a product path.
 */
import { openSync, readdirSync, readFileSync } from "node:fs";
import { EAGAIN, EINTR, libc, POLLERR, POLLHUP, POLLIN, POLLOUT } from "../shared/libc.js";
import { USBFS_IOCTL, UrbType, usbfsNode } from "../kernel-glue/usbfs.js";

// a failure is one line (no stack trace), as the C server's
process.on("uncaughtException", (e) => {
  process.stderr.write(`usbfs-server: ${e.message}\n`);
  process.exit(1);
});
const c = libc();
const ioc = (dir: number, nr: number, size: number) => ((dir << 30) | (size << 16) | (0x55 << 8) | nr) >>> 0;
/** _IOR('U', 27, struct usbdevfs_disconnect_claim { u32 interface; u32 flags; char driver[256]; }) */
const DISCONNECT_CLAIM = ioc(2, 27, 264);
/** _IOWR('U', 18, struct usbdevfs_ioctl { int ifno; int ioctl_code; void *data; }), and _IO('U', 23) */
const USBDEVFS_IOCTL = ioc(3, 18, 16);
const CONNECT = ioc(0, 23, 0);
const HDR = 48;
const ECONNRESET = 104;

const busid = process.argv[process.argv.indexOf("export") + 1];
if (!process.argv.includes("export") || busid === undefined) {
  process.stderr.write("usage: koffi-usbfs-server ... export BUSID ...\n");
  process.exit(64);
}
const sys = (f: string) => readFileSync(`/sys/bus/usb/devices/${f}`, "utf8").trim();
const busnum = Number(sys(`${busid}/busnum`));
const devnum = Number(sys(`${busid}/devnum`));
const fd = openSync(usbfsNode(busnum, devnum), "r+");

// the active configuration's interfaces and their endpoints' types (ep | in << 4)
const epType = new Map<number, number>();
const ifaces: number[] = [];
for (const d of readdirSync("/sys/bus/usb/devices").filter((n) => n.startsWith(`${busid}:`))) {
  ifaces.push(parseInt(sys(`${d}/bInterfaceNumber`), 16));
  for (const e of readdirSync(`/sys/bus/usb/devices/${d}`).filter((n) => n.startsWith("ep_"))) {
    const addr = parseInt(e.slice(3), 16);
    const t = sys(`${d}/${e}/type`);
    epType.set((addr & 0xf) | (addr & 0x80 ? 16 : 0), t === "Bulk" ? UrbType.BULK : t === "Interrupt" ? UrbType.INTERRUPT : t === "Isoc" ? UrbType.ISO : UrbType.CONTROL);
  }
}
const call = (req: number, arg: Buffer | null) => (c.ioctl(fd, req, arg) < 0 ? -c.errno() : 0);
for (const n of ifaces) {
  const dc = Buffer.alloc(264);
  dc.writeUInt32LE(n, 0);
  if (call(DISCONNECT_CLAIM, dc) !== 0) throw new Error(`USBDEVFS_DISCONNECT_CLAIM ${n}: errno ${c.errno()}`);
}
c.writev(1, [Buffer.from(`${(busnum << 16) | devnum} ${sys(`${busid}/speed`)}\n`)]);

interface Urb {
  struct: Buffer;
  buf: Buffer;
  seqnum: number;
  dirIn: boolean;
  control: boolean;
  unlinkedBy?: number;
}
const inFlight = new Map<number, Urb>(); // by the struct's address (what REAPURBNDELAY gives back)
const bySeq = new Map<number, Urb>();
let out: Buffer[] = [];
const pfd = Buffer.alloc(16);
const reaped = Buffer.alloc(8);

function ret(command: number, seqnum: number, status: number, actual: number, data?: Buffer): void {
  const h = Buffer.alloc(HDR);
  h.writeUInt32BE(command, 0);
  h.writeUInt32BE(seqnum, 4);
  h.writeInt32BE(status, 20);
  h.writeUInt32BE(actual, 24);
  out.push(h);
  if (data !== undefined && actual > 0) out.push(data.subarray(0, actual));
}

function flush(): void {
  while (out.length > 0) {
    const n = c.writev(1, out.length > 256 ? out.slice(0, 256) : out);
    if (n < 0) {
      if (c.errno() !== EAGAIN && c.errno() !== EINTR) throw new Error(`write to the link: errno ${c.errno()}`);
      pfd.writeInt32LE(1, 0);
      pfd.writeInt16LE(POLLOUT, 4);
      c.pollSync(pfd, 1, 100);
      continue;
    }
    let left = n;
    let i = 0;
    while (i < out.length && left >= out[i]!.length) left -= out[i++]!.length;
    out = out.slice(i);
    if (left > 0) out[0] = out[0]!.subarray(left);
  }
}

function reap(): void {
  while (call(USBFS_IOCTL.REAPURBNDELAY, reaped) === 0) {
    const key = Number(reaped.readBigUInt64LE(0));
    const u = inFlight.get(key);
    if (u === undefined) continue;
    inFlight.delete(key);
    bySeq.delete(u.seqnum);
    if (u.unlinkedBy !== undefined) ret(4, u.unlinkedBy, -ECONNRESET, 0);
    else ret(3, u.seqnum, u.struct.readInt32LE(4), u.struct.readInt32LE(28), u.dirIn ? u.buf.subarray(u.control ? 8 : 0) : undefined);
  }
}

/** one message at `at` in `b` (`end` bytes valid): its length once whole, else 0 */
function handle(b: Buffer, at: number, end: number): number {
  if (end - at < HDR) return 0;
  const cmd = b.readUInt32BE(at);
  const seqnum = b.readUInt32BE(at + 4);
  if (cmd === 2) {
    const victim = bySeq.get(b.readUInt32BE(at + 20));
    if (victim !== undefined && victim.unlinkedBy === undefined && call(USBFS_IOCTL.DISCARDURB, victim.struct) === 0) victim.unlinkedBy = seqnum;
    else ret(4, seqnum, 0, 0);
    return HDR;
  }
  const dirIn = b.readUInt32BE(at + 12) === 1;
  const ep = b.readUInt32BE(at + 16);
  const flags = b.readUInt32BE(at + 20);
  const len = b.readUInt32BE(at + 24);
  const total = HDR + (dirIn ? 0 : len);
  if (cmd !== 1 || ep > 15) throw new Error(`unsupported message ${cmd} (ep ${ep})`);
  if (end - at < total) return 0;
  const control = ep === 0;
  if (control) {
    // the requests usbip-host does itself: SET_CONFIGURATION kept, SET_INTERFACE, CLEAR_HALT
    const type = b[at + 40]!;
    const req = b[at + 41]!;
    const value = b.readUInt16LE(at + 42);
    const index = b.readUInt16LE(at + 44);
    if (type === 0 && req === 9) return ret(3, seqnum, 0, 0), total;
    if (type === 1 && req === 11) {
      const si = Buffer.alloc(8);
      si.writeUInt32LE(index, 0);
      si.writeUInt32LE(value, 4);
      return ret(3, seqnum, call(USBFS_IOCTL.SETINTERFACE, si), 0), total;
    }
    if (type === 2 && req === 1 && value === 0) {
      const e = Buffer.alloc(4);
      e.writeUInt32LE(index & 0x8f, 0);
      return ret(3, seqnum, call(USBFS_IOCTL.CLEAR_HALT, e), 0), total;
    }
  }
  const buf = Buffer.allocUnsafe(len + (control ? 8 : 0));
  if (control) b.copy(buf, 0, at + 40, at + 48);
  if (!dirIn) b.copy(buf, control ? 8 : 0, at + HDR, at + total);
  const type = control ? UrbType.CONTROL : epType.get(ep | (dirIn ? 16 : 0));
  if (type === undefined || type === UrbType.ISO) throw new Error(`endpoint ${ep}: not served`);
  const s = Buffer.alloc(56);
  s.writeUInt8(type, 0);
  s.writeUInt8(control ? 0 : ep | (dirIn ? 0x80 : 0), 1);
  s.writeUInt32LE((dirIn && flags & 1 ? 0x01 : 0) | (!dirIn && flags & 0x40 ? 0x40 : 0), 8);
  s.writeBigUInt64LE(BigInt(c.address(buf)), 16);
  s.writeInt32LE(buf.length, 24);
  const r = call(USBFS_IOCTL.SUBMITURB, s);
  if (r !== 0) return ret(3, seqnum, r, 0), total;
  const u: Urb = { struct: s, buf, seqnum, dirIn, control };
  inFlight.set(c.address(s), u);
  bySeq.set(seqnum, u);
  return total;
}

const input = Buffer.allocUnsafe(8 << 20);
let have = 0;
for (;;) {
  pfd.writeInt32LE(0, 0);
  pfd.writeInt16LE(POLLIN, 4);
  pfd.writeInt16LE(0, 6);
  pfd.writeInt32LE(fd, 8);
  pfd.writeInt16LE(POLLOUT, 12);
  pfd.writeInt16LE(0, 14);
  if (c.pollSync(pfd, 2, 100) <= 0) continue;
  const usb = pfd.readInt16LE(14);
  if (usb & (POLLERR | POLLHUP)) break; // the device is gone
  if (usb & POLLOUT) reap();
  if (pfd.readInt16LE(6) & (POLLIN | POLLHUP)) {
    const n = c.read(0, input.subarray(have));
    if (n === 0) break;
    if (n > 0) {
      have += n;
      let at = 0;
      for (let used = handle(input, at, have); used > 0; used = handle(input, at, have)) at += used;
      // the rest (a partial message) to the front: the URBs' data were copied out
      input.copyWithin(0, at, have);
      have -= at;
      if (have === input.length) throw new Error(`a message longer than ${input.length} bytes`);
    } else if (c.errno() !== EAGAIN && c.errno() !== EINTR) break;
  }
  flush();
}
// the link is gone: give the interfaces back to their drivers
for (const u of inFlight.values()) call(USBFS_IOCTL.DISCARDURB, u.struct);
for (const n of ifaces) {
  const i = Buffer.alloc(4);
  i.writeUInt32LE(n, 0);
  call(USBFS_IOCTL.RELEASEINTERFACE, i);
  const io = Buffer.alloc(16);
  io.writeInt32LE(n, 0);
  io.writeInt32LE(CONNECT, 4);
  call(USBDEVFS_IOCTL, io);
}
process.exit(0);
