/** The test bed itself: a dummy_hcd mass-storage gadget enumerates and its disk reads back the image. */
import type { Scenario } from "./scenarios.js";
import { checkGadgetsGone, makeImage, massStorage, udcs, loadDummyHcd } from "./gadget.js";
import { check, diskOf, sha256, waitFor } from "./lib.js";

export const gadgetSmoke: Scenario = {
  name: "test bed: dummy_hcd mass-storage gadget reads back its image",
  async run() {
    loadDummyHcd();
    check(udcs().includes("dummy_udc.0"), `no dummy_udc.0 (udcs: ${udcs().join(",")})`);
    const img = "/run/tmp/smoke.img";
    makeImage(img, 4);
    const g = await massStorage("smoke", "dummy_udc.0", img);
    try {
      const disk = await waitFor("the gadget's disk", () => diskOf(g.busid), 20_000);
      check(sha256(disk, 4 << 20) === sha256(img), "disk contents differ from the image");
    } finally {
      g.remove();
    }
    checkGadgetsGone();
  },
};
