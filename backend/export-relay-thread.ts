/**
 * The backend relay's worker thread (relay/relay-thread.ts): the exported device's endpoints,
 * read from sysfs in the thread (and read again after SET_CONFIGURATION / SET_INTERFACE), for
 * the CMD_* device checks.
 */
import { serveRelayThread } from "../relay/relay-thread.js";
import { Sysfs } from "../kernel-glue/sysfs.js";
import { SysfsDeviceView, watchReconfiguration } from "../kernel-glue/endpoints.js";

export interface ExportRelayThreadData {
  sysfsRoot: string;
  busid: string;
  devid: number;
}

serveRelayThread((data) => {
  const d = data as ExportRelayThreadData;
  const device = new SysfsDeviceView(new Sysfs(d.sysfsRoot), d.busid, d.devid);
  return { device, onMessage: watchReconfiguration(device) };
});
