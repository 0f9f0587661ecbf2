/** kernel-glue/vhci.ts on fake trees: status formats, several controllers, full hubs, EBUSY races. */
import test from "ava";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { GlueErrorCode } from "../kernel-glue/errors.js";
import { parseVhciStatus, Vhci, VdevStatus } from "../kernel-glue/vhci.js";
import { fakeRoot, put, RecordingSysfs } from "./helpers/fake-sysfs.js";

const FREE = (hub: string, port: number) => `${hub}  ${String(port).padStart(4, "0")} 004 000 00000000 000000 0-0`;
const USED = (hub: string, port: number, local: string) => `${hub}  ${String(port).padStart(4, "0")} 006 003 00010002 000003 ${local}`;
const HEADER = "hub port sta spd dev      sockfd local_busid";

/** A controller with 8 hs + 8 ss ports per controller, `n` controllers, `used` ports in use. */
function tree(controllers: number, used: Record<number, string> = {}, hcPorts = 8): string {
  const root = fakeRoot();
  const dir = "devices/platform/vhci_hcd.0";
  for (let c = 0; c < controllers; c++) {
    const lines = [HEADER];
    for (const hub of ["hs", "ss"]) {
      for (let i = 0; i < hcPorts; i++) {
        const port = c * 2 * hcPorts + (hub === "ss" ? hcPorts : 0) + i;
        lines.push(used[port] ? USED(hub, port, used[port]!) : FREE(hub, port));
      }
    }
    put(root, `${dir}/${c === 0 ? "status" : `status.${c}`}`, lines.join("\n") + "\n");
  }
  put(root, `${dir}/nports`, `${controllers * 2 * hcPorts}\n`);
  put(root, `${dir}/attach`, "");
  put(root, `${dir}/detach`, "");
  return root;
}

test("parses the 6.x status format, tokenising on whitespace (hs lines, ss lines, hex devid)", (t) => {
  const ports = parseVhciStatus([HEADER, USED("hs", 0, "3-1"), FREE("ss", 8)].join("\n"));
  t.deepEqual(ports, [
    { hub: "hs", port: 0, status: 6, speed: 3, devid: 0x10002, sockfd: 3, localBusid: "3-1" },
    { hub: "ss", port: 8, status: 4, speed: 0, devid: 0, sockfd: 0, localBusid: "0-0" },
  ]);
});

test("accepts the not-ready form whose sockfd column is 16 zeros", (t) => {
  const p = parseVhciStatus(`${HEADER}\nhs  0000 005 000 00000000 0000000000000000 0-0\n`);
  t.is(p[0]!.status, VdevStatus.NOTASSIGNED);
  t.is(p[0]!.sockfd, 0);
});

test("refuses the pre-4.13 format with a clear error", (t) => {
  const old = "port sta spd bus dev socket           local_busid\n0000 004 000 000 000 0000000000000000 0-0\n";
  const e = t.throws(() => parseVhciStatus(old, "status"));
  t.is((e as { code?: string }).code, GlueErrorCode.OLD_KERNEL);
  t.regex(e!.message, /older than 4\.13/);
  const e2 = t.throws(() => parseVhciStatus("prt sta spd dev sockfd local_busid\n"));
  t.is((e2 as { code?: string }).code, GlueErrorCode.OLD_KERNEL);
});

test("several controllers: status.N files are all read, in controller order", (t) => {
  const v = new Vhci(new RecordingSysfs(tree(3, { 0: "3-1", 17: "4-1" })));
  t.is(v.statusFiles().length, 3);
  t.is(v.nports(), 48);
  t.is(v.ports().length, 48);
  t.deepEqual(v.freePorts(3).slice(0, 2), [1, 2]);
  t.false(v.freePorts(3).includes(17));
  t.true(v.freePorts(3).includes(16), "controller 1's first hs port");
  t.deepEqual(v.freePorts(5).slice(0, 2), [8, 9], "SuperSpeed goes to the ss hub");
  t.true(v.freePorts(6).includes(8), "SuperSpeedPlus too");
});

test("attach writes 'port fd devid speed' and picks the first free port of the right hub", async (t) => {
  const fs = new RecordingSysfs(tree(1, { 0: "3-1" }));
  const port = await new Vhci(fs).attachFd(0, 0x10002, 3);
  t.is(port, 1);
  t.deepEqual(fs.writes, [["devices/platform/vhci_hcd.0/attach", "1 0 65538 3"]]);
});

test("EBUSY race: a port taken meanwhile is skipped, the next one is used", async (t) => {
  const fs = new RecordingSysfs(tree(1), (rel, data) => (rel.endsWith("/attach") && /^[01] /.test(data) ? "EBUSY" : undefined));
  t.is(await new Vhci(fs).attachFd(0, 1, 3), 2);
});

test("full hub: NO_FREE_PORT, naming the hub; the other hub's free ports don't count", async (t) => {
  const used: Record<number, string> = {};
  for (let i = 0; i < 8; i++) used[i] = `3-${i + 1}`;
  const v = new Vhci(new RecordingSysfs(tree(1, used)));
  const e = await t.throwsAsync(v.attachFd(0, 1, 3));
  t.is((e as { code?: string }).code, GlueErrorCode.NO_FREE_PORT);
  t.regex(e!.message, /high-speed hub/);
  t.is(await v.attachFd(0, 1, 5), 8, "SuperSpeed still attaches");
});

test("every port EBUSY (all taken in a race): NO_FREE_PORT, not a loop", async (t) => {
  const fs = new RecordingSysfs(tree(1), (rel) => (rel.endsWith("/attach") ? "EBUSY" : undefined));
  const e = await t.throwsAsync(new Vhci(fs).attachFd(0, 1, 2));
  t.is((e as { code?: string }).code, GlueErrorCode.NO_FREE_PORT);
});

test("EINVAL from attach (not a stream socket) is an ATTACH error that says so", async (t) => {
  const fs = new RecordingSysfs(tree(1), (rel) => (rel.endsWith("/attach") ? "EINVAL" : undefined));
  const e = await t.throwsAsync(new Vhci(fs).attachFd(5, 1, 2));
  t.is((e as { code?: string }).code, GlueErrorCode.ATTACH);
  t.regex(e!.message, /stream socket/);
});

test("no vhci-hcd: NO_VHCI with the modprobe hint", (t) => {
  const e = t.throws(() => new Vhci(new RecordingSysfs(fakeRoot())).ports());
  t.is((e as { code?: string }).code, GlueErrorCode.NO_VHCI);
  t.regex(e!.message, /modprobe vhci-hcd/);
});

test("waitAttached: resolves with the local busid once USED and present; fails fast when the port is released", async (t) => {
  const root = tree(1);
  // right after the attach write the port is NOTASSIGNED (005) until the hub addresses it
  put(root, "devices/platform/vhci_hcd.0/status", [HEADER, "hs  0000 005 003 00010002 000003 0-0", FREE("hs", 1)].join("\n"));
  const v = new Vhci(new RecordingSysfs(root));
  setTimeout(() => {
    put(root, "devices/platform/vhci_hcd.0/status", [HEADER, USED("hs", 0, "3-1")].join("\n"));
    put(root, "bus/usb/devices/3-1/devnum", "2\n");
  }, 100);
  t.is(await v.waitAttached(0, 5000), "3-1");
  await t.throwsAsync(v.waitAttached(1, 5000), { message: /released before the device enumerated/ });
});

test("port rotation: the search starts after the port used last, wrapping around", async (t) => {
  const v = new Vhci(new RecordingSysfs(tree(1, { 2: "3-3" })));
  t.deepEqual(v.freePorts(3, 1), [3, 4, 5, 6, 7, 0, 1]);
  t.deepEqual(v.freePorts(3, 7), [0, 1, 3, 4, 5, 6, 7]);
  const fs = new RecordingSysfs(tree(1));
  t.is(await new Vhci(fs).attachFd(0, 1, 3, 4), 5);
});

test("ports of a controller that carries a device this machine exports come last (its bandwidth_mutex would deadlock an import of it)", (t) => {
  const v = new Vhci(new RecordingSysfs(tree(3, { 0: "3-1", 16: "5-1" })));
  const plain = v.freePorts(3);
  t.deepEqual(plain.slice(0, 2), [1, 2], "nothing exported: controller 0 first");
  const avoid = v.freePorts(3, undefined, new Set(["3-1"]));
  t.deepEqual(avoid.slice(0, 3), [17, 18, 19], "controller 0 carries 3-1: controller 1 first");
  t.deepEqual(avoid.slice(-7), [1, 2, 3, 4, 5, 6, 7], "controller 0's free ports still offered, last");
  t.is(avoid.length, plain.length, "no port lost");
  t.deepEqual(v.freePorts(3, undefined, new Set(["3-1.4"])).slice(0, 1), [17], "a device behind an imported hub counts");
  t.deepEqual(v.freePorts(3, undefined, new Set(["3-10"])).slice(0, 2), [1, 2], "3-10 is not behind 3-1");
  t.deepEqual(v.freePorts(3, 17, new Set(["3-1", "5-1"])).slice(0, 3), [32, 33, 34], "the controller after the last port's first, then the rest, carriers last");
});

test("port rotation across controllers: after a port of controller k, controller k+1's ports first and k's last (its root hub may still be retrying the old port)", (t) => {
  const v = new Vhci(new RecordingSysfs(tree(3)));
  const hs = (c: number) => [0, 1, 2, 3, 4, 5, 6, 7].map((i) => c * 16 + i);
  t.deepEqual(v.freePorts(3, 2), [...hs(1), ...hs(2), 3, 4, 5, 6, 7, 0, 1, 2]);
  t.deepEqual(v.freePorts(3, 33), [...hs(0), ...hs(1), 34, 35, 36, 37, 38, 39, 32, 33], "from the last controller, around to the first");
  const ss = [8, 9, 10, 11, 12, 13, 14, 15].map((i) => 16 + i);
  t.deepEqual(v.freePorts(5, 9).slice(0, 8), ss, "a SuperSpeed port of controller 0: controller 1's SuperSpeed ports next");
});

test("attachFd reads the exports from the run directory and avoids their controller", async (t) => {
  const run = mkdtempSync(path.join(tmpdir(), "uq-run-"));
  writeFileSync(path.join(run, "export-3-1.pid"), `${process.pid}\n`);
  const before = process.env.USBIP_QREXEC_RUNDIR;
  process.env.USBIP_QREXEC_RUNDIR = run;
  try {
    const fs = new RecordingSysfs(tree(2, { 0: "3-1" }));
    t.is(await new Vhci(fs).attachFd(0, 0x10002, 3), 16);
    rmSync(path.join(run, "export-3-1.pid"));
    t.is(await new Vhci(new RecordingSysfs(tree(2, { 0: "3-1" }))).attachFd(0, 0x10002, 3), 1, "export ended: controller 0 again");
  } finally {
    if (before === undefined) delete process.env.USBIP_QREXEC_RUNDIR;
    else process.env.USBIP_QREXEC_RUNDIR = before;
    rmSync(run, { recursive: true, force: true });
  }
});
