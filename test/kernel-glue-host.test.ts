/** kernel-glue usbip-host and device resolution on fake trees. */
import test from "ava";
import { GlueErrorCode } from "../kernel-glue/errors.js";
import { UsbipHost } from "../kernel-glue/usbip-host.js";
import { checkExportable, describeDevice, exportableDevices, resolveDevice } from "../kernel-glue/usb-devices.js";
import { addDevice, fakeRoot, put, RecordingSysfs } from "./helpers/fake-sysfs.js";

function hostTree(): string {
  const root = fakeRoot();
  for (const f of ["match_busid", "bind", "unbind", "rebind"]) put(root, `bus/usb/drivers/usbip-host/${f}`, "");
  put(root, "bus/usb/drivers/usb/unbind", "");
  put(root, "bus/usb/drivers_probe", "");
  addDevice(root, { busid: "2-1", busnum: 2, devnum: 5, driver: "usb", interfaces: [{ cls: "08", driver: "usb-storage" }], product: "Disk" });
  addDevice(root, { busid: "1-1.4", busnum: 1, devnum: 7, idVendor: "046d", idProduct: "c52b", interfaces: [{ cls: "03" }] });
  addDevice(root, { busid: "1-1", busnum: 1, devnum: 2, bDeviceClass: "09", idVendor: "05e3", idProduct: "0608" });
  addDevice(root, { busid: "3-1", busnum: 3, devnum: 2, onVhci: true, idVendor: "046d", idProduct: "c52b" });
  return root;
}

test("bind: unbind the current driver, match_busid 'add' without newline, then bind — in that order", (t) => {
  const fs = new RecordingSysfs(hostTree());
  const before = new UsbipHost(fs).bind("2-1");
  t.is(before, "usb");
  t.deepEqual(fs.writes, [
    ["bus/usb/drivers/usb/unbind", "2-1"],
    ["bus/usb/drivers/usbip-host/match_busid", "add 2-1"],
    ["bus/usb/drivers/usbip-host/bind", "2-1"],
  ]);
});

/** The kernel's match_busid reads back as a list of busids ("2-1 \n"), not what was written. */
class MatchList extends RecordingSysfs {
  listed = "\n";
  override tryRead(rel: string): string | undefined {
    return rel.endsWith("usbip-host/match_busid") ? this.listed : super.tryRead(rel);
  }
}

test("bind failure: the device is reprobed and no match_busid 'del' is written (a 'del' while another export holds it would wedge the stub's entry)", (t) => {
  const fs = new MatchList(hostTree(), (rel) => (rel.endsWith("usbip-host/bind") ? "ENODEV" : undefined));
  t.throws(() => new UsbipHost(fs).bind("2-1"), { message: /bind failed: ENODEV/ });
  t.deepEqual(fs.writes.at(-1), ["bus/usb/drivers_probe", "2-1"]);
  t.false(fs.writes.some(([, d]) => d.startsWith("del ")));
});

test("bind refused for a busid that match_busid lists: one line naming the wedged entry and the way out", (t) => {
  const fs = new MatchList(hostTree(), (rel) => (rel.endsWith("usbip-host/bind") ? "ENODEV" : undefined));
  fs.listed = "2-1 \n";
  t.throws(() => new UsbipHost(fs).bind("2-1"), { message: /usbip-host refuses 2-1 although it is in its match_busid table: the entry is wedged.*modprobe -r usbip-host/ });
});

test("no usbip-host: NO_USBIP_HOST", (t) => {
  const root = fakeRoot();
  addDevice(root, { busid: "2-1", busnum: 2, devnum: 5 });
  const e = t.throws(() => new UsbipHost(new RecordingSysfs(root)).bind("2-1"));
  t.is((e as { code?: string }).code, GlueErrorCode.NO_USBIP_HOST);
});

test("disconnect writes -1 only while used; EINVAL (ended meanwhile) is not an error", (t) => {
  const root = hostTree();
  put(root, "bus/usb/devices/2-1/usbip_status", "2\n");
  put(root, "bus/usb/devices/2-1/usbip_sockfd", "");
  const fs = new RecordingSysfs(root);
  t.true(new UsbipHost(fs).disconnect("2-1"));
  t.deepEqual(fs.writes, [["bus/usb/devices/2-1/usbip_sockfd", "-1"]]);
  put(root, "bus/usb/devices/2-1/usbip_status", "1\n");
  t.false(new UsbipHost(fs).disconnect("2-1"));
  put(root, "bus/usb/devices/2-1/usbip_status", "2\n");
  const racing = new RecordingSysfs(root, (rel) => (rel.endsWith("usbip_sockfd") ? "EINVAL" : undefined));
  t.false(new UsbipHost(racing).disconnect("2-1"));
});

test("unbind only unbinds from usbip-host (no 'del'); rebind frees the stub's entry, or reprobes when it has none", (t) => {
  const root = hostTree();
  addDevice(root, { busid: "4-1", busnum: 4, devnum: 3, driver: "usbip-host" });
  const fs = new RecordingSysfs(root);
  const host = new UsbipHost(fs);
  t.false(host.unbind("2-1"), "2-1 is on 'usb': nothing to do");
  t.true(host.unbind("4-1"));
  host.rebind("4-1");
  t.deepEqual(fs.writes, [
    ["bus/usb/drivers/usbip-host/unbind", "4-1"],
    ["bus/usb/drivers/usbip-host/rebind", "4-1"],
  ]);
  const noEntry = new RecordingSysfs(root, (rel) => (rel.endsWith("usbip-host/rebind") ? "ENODEV" : undefined));
  new UsbipHost(noEntry).rebind("4-1");
  t.deepEqual(noEntry.writes.at(-1), ["bus/usb/drivers_probe", "4-1"]);
});

test("resolveDevice: busids, dotted busids, vendor.product with exactly one match", (t) => {
  const fs = new RecordingSysfs(hostTree());
  t.is(resolveDevice(fs, "2-1"), "2-1");
  t.is(resolveDevice(fs, "1-1.4"), "1-1.4");
  t.throws(() => resolveDevice(fs, "2-1:1.0"), { message: /is an interface/ });
  t.throws(() => resolveDevice(fs, "9-9"), { message: /no such USB device: 9-9/ });
  t.throws(() => resolveDevice(fs, "sda"), { message: /invalid device "sda"/ });
  t.is(resolveDevice(fs, "0x1d6b.0x0104"), "2-1");
  const e = t.throws(() => resolveDevice(fs, "0x046d.0xc52b"));
  t.is((e as { code?: string }).code, GlueErrorCode.AMBIGUOUS_DEVICE);
  t.regex(e!.message, /2 devices match 046d:c52b \(1-1\.4, 3-1\)/);
  t.throws(() => resolveDevice(fs, "0xffff.0x0001"), { message: /no USB device with id ffff:0001/ });
});

test("describe and list: ids, devid, interfaces with drivers; hubs and vhci devices are not exportable", (t) => {
  const fs = new RecordingSysfs(hostTree());
  const d = describeDevice(fs, "2-1");
  t.is(d.devid, (2 << 16) | 5);
  t.is(d.product, "Disk");
  t.is(d.driver, "usb");
  t.deepEqual(d.interfaces.map((i) => [i.name, i.bInterfaceClass, i.driver]), [["2-1:1.0", 8, "usb-storage"]]);
  t.true(describeDevice(fs, "3-1").onVhci);
  t.deepEqual(exportableDevices(fs).map((x) => x.busid), ["1-1.4", "2-1"]);
});

test("checkExportable: a device on vhci-hcd is refused for usbip-host and passed on in userspace mode; a hub never", (t) => {
  const fs = new RecordingSysfs(hostTree());
  const onVhci = describeDevice(fs, "3-1");
  const e = t.throws(() => checkExportable(onVhci));
  t.regex(e!.message, /3-1 is itself imported through vhci-hcd, which usbip-host refuses; pass it on with --mode userspace/);
  t.notThrows(() => checkExportable(onVhci, { userspace: true }));
  t.throws(() => checkExportable(describeDevice(fs, "1-1"), { userspace: true }), { message: /is a hub/ });
  t.notThrows(() => checkExportable(describeDevice(fs, "2-1")));
});

test("waitSettled: waits while usbip_status is USED, returns once the stub set it back; times out otherwise", async (t) => {
  const root = hostTree();
  put(root, "bus/usb/devices/2-1/usbip_status", "2\n");
  const host = new UsbipHost(new RecordingSysfs(root));
  let changed = false;
  setTimeout(() => {
    put(root, "bus/usb/devices/2-1/usbip_status", "1\n");
    changed = true;
  }, 150);
  t.true(await host.waitSettled("2-1", 5000));
  t.true(changed, "it waited for the status change");
  put(root, "bus/usb/devices/2-1/usbip_status", "2\n");
  t.false(await host.waitSettled("2-1", 100));
});

test("checkNotExported: a live export's pid file, or usbip-host using the device, refuses before anything is written", async (t) => {
  const { checkNotExported } = await import("../backend/export-lifecycle.js");
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const path = await import("node:path");
  const run = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-run-"));
  process.env.USBIP_QREXEC_RUNDIR = run;
  try {
    const fs = new RecordingSysfs(hostTree());
    t.notThrows(() => checkNotExported(fs, "2-1"));
    writeFileSync(path.join(run, "export-2-1.pid"), `${process.ppid}\n`); // a live process that is not us
    const e = t.throws(() => checkNotExported(fs, "2-1"));
    t.is((e as { code?: string }).code, GlueErrorCode.ALREADY_EXPORTED);
    t.regex(e!.message, /^2-1 is already exported \(by process \d+\): end that first \('usbip-qrexec detach --busid 2-1'\)$/);
    writeFileSync(path.join(run, "export-2-1.pid"), "999999999\n"); // stale: no such process
    t.notThrows(() => checkNotExported(fs, "2-1"));
    const used = hostTree();
    addDevice(used, { busid: "4-1", busnum: 4, devnum: 3, driver: "usbip-host", usbipStatus: 2 });
    const e2 = t.throws(() => checkNotExported(new RecordingSysfs(used), "4-1"));
    t.regex(e2!.message, /4-1 is already exported: usbip-host has it in use/);
    t.deepEqual(fs.writes, []);
  } finally {
    delete process.env.USBIP_QREXEC_RUNDIR;
  }
});

test("bind writes match_busid 'add' and bind once each: a refusal is not retried (no sleeps, no second add)", (t) => {
  let binds = 0;
  const fs = new MatchList(hostTree(), (rel) => (rel.endsWith("usbip-host/bind") && ++binds > 0 ? "ENODEV" : undefined));
  t.throws(() => new UsbipHost(fs).bind("2-1"));
  t.is(binds, 1, "one bind write");
  t.is(fs.writes.filter(([rel, d]) => rel.endsWith("usbip-host/match_busid") && d === "add 2-1").length, 1);
});
