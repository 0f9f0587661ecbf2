/** sysfs speed strings ↔ enum usb_device_speed, with the seed's SuperSpeedPlus kernel gate. */
import test from "ava";
import { kernelSupportsSuperPlus, speedFromString, speedToString, SPEED_STRINGS } from "../protocol/speed.js";

test("speed strings map like the seed's usb-import", (t) => {
  t.deepEqual(SPEED_STRINGS.map((s) => speedFromString(s, false)), [1, 2, 3, 4, 5, 5, 5]);
  t.deepEqual(SPEED_STRINGS.map((s) => speedFromString(s, true)), [1, 2, 3, 4, 5, 6, 6]);
});

test("SuperSpeedPlus (6) only on kernels >= 6.12", (t) => {
  for (const r of ["6.12.0", "6.12.5-1-qubes.fc37.x86_64", "6.13.1", "7.0.0"]) t.true(kernelSupportsSuperPlus(r), r);
  for (const r of ["6.1.0-56-amd64", "6.11.9", "5.15.0", "4.19.0", "garbage"]) t.false(kernelSupportsSuperPlus(r), r);
});

test("enum → sysfs string", (t) => {
  t.deepEqual([1, 2, 3, 4, 5, 6, 0].map(speedToString), ["1.5", "12", "480", "53.3-480", "5000", "10000", "12"]);
});
