/**
 * Seed parity against the real kernel: during a kernel-mode export the QubesDB keys are written
 * (recorded by a stand-in qubesdb-write / qubesdb-rm on PATH) and removed after the detach; the
 * usb-reset-on-attach flag makes the export reset the gadget (visible in dmesg) and the disk
 * still reads back byte-identical; `detach --all` frees two exported devices at once.
 */
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import type { Scenario } from "./scenarios.js";
import { makeImage, massStorage, checkGadgetsGone } from "./gadget.js";
import { check, diskOf, dmesgMark, dmesgSince, sha256, tryRead, waitFor } from "./lib.js";
import { checkCleanedUp, cli, kernelFlow, waitImported } from "./flows.js";

const MIB = 1 << 20;

function fakeQubesDb(): { path: string; log: string } {
  const dir = "/run/tmp/fakebin";
  const log = "/run/tmp/qubesdb.log";
  mkdirSync(dir, { recursive: true });
  rmSync(log, { force: true });
  for (const name of ["qubesdb-write", "qubesdb-rm"]) {
    writeFileSync(`${dir}/${name}`, `#!/bin/sh\n{ printf '%s' "${name}"; for a in "$@"; do printf '|%s' "$a"; done; printf '\\n'; } >> ${log}\n`);
    chmodSync(`${dir}/${name}`, 0o755);
  }
  return { path: `${dir}:${process.env.PATH}`, log };
}

export const seedParityQubesDbReset: Scenario = {
  name: "seed parity: QubesDB keys during a real export and their removal; reset on attach resets the gadget, disk still byte-identical",
  async run() {
    const img = "/run/tmp/disk-parity.img";
    makeImage(img, 16);
    const g = await massStorage("parity", "dummy_udc.0", img);
    const flagDir = "/run/qubes-service";
    mkdirSync(flagDir, { recursive: true });
    writeFileSync(`${flagDir}/usb-reset-on-attach`, "");
    const statefile = "/run/tmp/state-parity";
    const db = fakeQubesDb();
    try {
      await waitFor("the backend's own disk", () => diskOf(g.busid), 20_000);
      const since = dmesgMark();
      // the sim passes its environment on: PATH with the stand-ins reaches the export
      const flow = kernelFlow(g.busid, statefile, { env: { PATH: db.path } });
      const { port, local } = await waitImported(statefile, flow);
      const resets = dmesgSince(since).filter((l) => new RegExp(`${g.busid}: reset \\S+ USB device`).test(l));
      check(resets.length >= 1, "no reset of the gadget in dmesg after bind (reset on attach)");
      const disk = await waitFor(`a disk on ${local}`, () => diskOf(local), 30_000);
      check(sha256(disk, 16 * MIB) === sha256(img), "imported disk does not read back the image after the reset");
      const during = readFileSync(db.log, "utf8").trim().split("\n");
      const key = `/qubes-usb-devices/${g.busid.replace(/[:.]/g, "_")}`;
      const w = during.find((l) => l.startsWith(`qubesdb-write|${key}/connected-to|sim-frontend|${key}/x-pid|`));
      check(w !== undefined, `no QubesDB write for ${key}: ${during.join(" / ")}`);
      const pid = Number(w!.split("|")[4]);
      check(/export/.test(tryRead(`/proc/${pid}/cmdline`)?.replace(/\0/g, " ") ?? ""), `x-pid ${pid} is not the exporting process`);
      check(w!.endsWith("|/qubes-usb-devices|"), "the change is not signalled with an empty /qubes-usb-devices");
      const d = cli(["detach", "--statefile", statefile]);
      check((await d.exited).code === 0, `detach failed: ${d.stderr()}`);
      await checkCleanedUp({ port, statefile, busid: g.busid, interfaceDriver: "usb-storage", flow });
      const after = readFileSync(db.log, "utf8").trim().split("\n");
      check(after.length === during.length + 2, `expected 2 more QubesDB calls after the detach: ${after.join(" / ")}`);
      check(after[during.length] === `qubesdb-rm|${key}/connected-to|${key}/x-pid`, `keys not removed: ${after[during.length]}`);
      check(after[during.length + 1] === "qubesdb-write|/qubes-usb-devices|", `removal not signalled: ${after[during.length + 1]}`);
    } finally {
      rmSync(`${flagDir}/usb-reset-on-attach`, { force: true });
      g.remove();
    }
    checkGadgetsGone();
  },
};

export const seedParityDetachAll: Scenario = {
  name: "seed parity: detach --all frees two exported devices at once",
  async run() {
    const imgs = ["/run/tmp/all-a.img", "/run/tmp/all-b.img"];
    for (const i of imgs) makeImage(i, 4);
    const gs = [await massStorage("alla", "dummy_udc.0", imgs[0]!), await massStorage("allb", "dummy_udc.1", imgs[1]!)];
    try {
      const flows = gs.map((g, i) => ({ g, statefile: `/run/tmp/state-all-${i}`, flow: kernelFlow(g.busid, `/run/tmp/state-all-${i}`) }));
      const imported = [];
      for (const f of flows) imported.push({ ...f, ...(await waitImported(f.statefile, f.flow)) });
      for (const [i, f] of imported.entries()) {
        const disk = await waitFor(`a disk on ${f.local}`, () => diskOf(f.local), 30_000);
        check(sha256(disk, 4 * MIB) === sha256(imgs[i]!), `device ${i} does not read back its own image`);
      }
      const d = cli(["detach", "--all"]);
      check((await d.exited).code === 0, `detach --all failed: ${d.stderr()}`);
      for (const f of imported) {
        const r = await Promise.race([f.flow.exited, new Promise<undefined>((res) => setTimeout(() => res(undefined), 30_000))]);
        check(r !== undefined, `flow for ${f.g.busid} still running after detach --all`);
      }
      for (const f of imported) await checkCleanedUp({ port: f.port, statefile: f.statefile, busid: f.g.busid, interfaceDriver: "usb-storage", flow: f.flow });
      check(!existsSync("/run/usbip-qrexec/export-" + gs[0]!.busid + ".pid"), "pid file left");
    } finally {
      for (const g of gs) g.remove();
    }
    checkGadgetsGone();
  },
};
