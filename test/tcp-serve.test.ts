/**
 * `serve --tcp` on the host (virtual devices; the kernel-mode devices and Linux's own usbip
 * tools are in test/vm): OP_REQ_DEVLIST / OP_REQ_IMPORT answered as usbipd does, the URB phase
 * on the same socket driven by our userspace host, busy and unknown devices refused with
 * usbipd's statuses, a malformed request closes the connection.
 */
import test from "ava";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { encode } from "../protocol/encoder.js";
import type { ServerMessage } from "../protocol/messages.js";
import { ServerStreamDecoder } from "../protocol/server-decoder.js";
import { UsbHost } from "../host/usb-host.js";
import { enumerate } from "../host/enumerate.js";
import { BotClient } from "../host/bot-client.js";
import { requestImport } from "../frontend/connect-tcp.js";
import { repoRoot } from "./helpers/fixtures.js";
import { runCli } from "./helpers/cli.js";

const tmp = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-tcp-"));
const img = path.join(tmp, "disk.img");
const content = randomBytes(512 * 1024);
writeFileSync(img, content);

let server: ChildProcess;
let port = 0;
test.before(async () => {
  server = spawn(process.execPath, [path.join(repoRoot, "bin/usbip-qrexec.js"), "serve", "--tcp", "127.0.0.1:0", "--virtual", `mass-storage:${img}`, "--virtual", "hid-keyboard"], { stdio: ["ignore", "ignore", "pipe"] });
  port = await new Promise<number>((resolve, reject) => {
    let err = "";
    server.stderr!.on("data", (b: Buffer) => {
      err += b.toString();
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(err);
      if (m) resolve(Number(m[1]));
    });
    server.once("exit", (c) => reject(new Error(`serve exited ${c}: ${err}`)));
  });
});
test.after.always(() => server?.kill("SIGTERM"));

async function op(req: Buffer[]): Promise<{ msgs: ServerMessage[]; closed: boolean }> {
  const sock = net.connect({ host: "127.0.0.1", port });
  for (const b of req) sock.write(b);
  const dec = new ServerStreamDecoder({ phase: "op" });
  const msgs: ServerMessage[] = [];
  await new Promise<void>((resolve) => {
    sock.on("data", (c: Buffer) => {
      dec.push(c);
      for (let m = dec.next(); m !== null; m = dec.next()) msgs.push(m);
    });
    sock.on("close", () => resolve());
    setTimeout(() => {
      sock.destroy();
      resolve();
    }, 5000);
  });
  return { msgs, closed: true };
}

test.serial("OP_REQ_DEVLIST lists both virtual devices with their interfaces, then closes", async (t) => {
  const { msgs } = await op(encode({ kind: "OP_REQ_DEVLIST" }));
  t.is(msgs.length, 1);
  const m = msgs[0]!;
  if (m.kind !== "OP_REP_DEVLIST") return t.fail(m.kind);
  t.is(m.status, 0);
  t.deepEqual(m.devices.map((d) => d.busid), ["virtual-1", "virtual-2"]);
  t.deepEqual(m.devices[0]!.interfaces, [{ bInterfaceClass: 8, bInterfaceSubClass: 6, bInterfaceProtocol: 0x50 }]);
  t.deepEqual(m.devices[1]!.interfaces, [{ bInterfaceClass: 3, bInterfaceSubClass: 1, bInterfaceProtocol: 1 }]);
  t.is(m.devices[0]!.speed, 3); // high speed
});

test.serial("OP_REQ_IMPORT then the URB phase: the disk reads back; a second import is ST_DEV_BUSY, an unknown busid ST_NODEV", async (t) => {
  const { sock, device } = await requestImport("127.0.0.1", port, "virtual-1");
  t.is(device.busid, "virtual-1");
  const host = new UsbHost(((device.busnum << 16) | device.devnum) >>> 0, sock, sock);
  const bot = await BotClient.open(host, await enumerate(host));
  t.deepEqual(await bot.readCapacity(), { blocks: 1024, blockSize: 512 });
  t.true((await bot.read(0, 1024)).equals(content));
  await t.throwsAsync(requestImport("127.0.0.1", port, "virtual-1"), { message: /refused to export virtual-1: ST_DEV_BUSY \(device busy\)/ });
  await t.throwsAsync(requestImport("127.0.0.1", port, "9-9"), { message: /ST_NODEV \(no such device\)/ });
  sock.destroy();
  // once the session is over the device can be imported again
  await new Promise((r) => setTimeout(r, 300));
  const again = await requestImport("127.0.0.1", port, "virtual-1");
  again.sock.destroy();
  t.pass();
});

test.serial("a malformed OP request (wrong version) gets no reply and the connection is closed", async (t) => {
  const bad = Buffer.from(encode({ kind: "OP_REQ_DEVLIST" })[0]!);
  bad.writeUInt16BE(0x0106, 0);
  const { msgs } = await op([bad]);
  t.is(msgs.length, 0);
  // and the server still serves others
  const { msgs: ok } = await op(encode({ kind: "OP_REQ_DEVLIST" }));
  t.is(ok[0]?.kind, "OP_REP_DEVLIST");
});

test.serial("serve and connect: the CLI contract's forms (positional DEVICE, no STATEFILE); errors are one line", async (t) => {
  const c = await runCli(["connect", "--tcp", "127.0.0.1:1", "--busid", "1-1"], { env: { USBIP_QREXEC_RUNDIR: mkdtempSync(path.join(tmp, "run-")) } });
  t.is(c.code, 1);
  t.regex(c.stderr, /^usbip-qrexec: cannot connect to 127\.0\.0\.1:1: connection refused \(is a usbipd listening there\?\) \(ECONNREFUSED\)$/m);
  t.is(c.stderr.trim().split("\n").length, 1);
  const refused = await runCli(["connect", "--tcp", `127.0.0.1:${port}`, "--busid", "9-9"], { env: { USBIP_QREXEC_RUNDIR: mkdtempSync(path.join(tmp, "run-")) } });
  t.is(refused.code, 1);
  t.regex(refused.stderr, /refused to export 9-9: ST_NODEV/);
  for (const args of [["serve"], ["serve", "--tcp", "127.0.0.1:0"], ["serve", "--tcp", "nohost:99999", "--virtual", "hid-keyboard"], ["connect", "--tcp", "127.0.0.1:1"], ["connect", "--tcp", "127.0.0.1:1", "--busid", "a b"]]) {
    const r = await runCli(args);
    t.is(r.code, 64, args.join(" "));
    t.is(r.stderr.trim().split("\n").length, 1, args.join(" "));
  }
  // a positional DEVICE that does not exist is refused before listening
  const bad = await runCli(["serve", "--tcp", "127.0.0.1:0", "77-7"], { env: { USBIP_QREXEC_SYSFS: mkdtempSync(path.join(tmp, "sys-")) } });
  t.is(bad.code, 1);
  t.is(bad.stderr.trim().split("\n").length, 1, bad.stderr);
});
