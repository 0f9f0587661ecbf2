/**
 * Serve a userspace device (a model or a libusb device) over the qrexec link on fd 0/1: the
 * handshake line, then device/urb-server.ts until the link ends or a termination signal. A
 * refused frontend message becomes USBIP_ERR_RELAY_VIOLATION (exit status 2 in the CLI).
 */
import type { UrbDevice } from "../device/urb-device.js";
import { UrbServer } from "../device/urb-server.js";
import { RelayViolationError } from "../protocol/errors.js";
import { sendHandshake } from "./send-handshake.js";
import { openLink } from "../qrexec/link.js";
import type { Logger } from "../shared/log.js";

export async function serveOnLink(device: UrbDevice, log: Logger, stop: Promise<unknown>, what: string): Promise<number> {
  const link = openLink();
  await sendHandshake(link.output, device);
  log.info(`${what}: devid ${device.devid} speed ${device.speed}; serving URBs`);
  const server = new UrbServer(device, link.input, link.output);
  server.start();
  stop.then(() => server.stop(), () => {});
  const r = await server.done;
  log.info(`session ended (${r.reason}): ${JSON.stringify(r.stats)}`);
  if (r.violation) throw new RelayViolationError(r.violation, "frontend");
  return 0;
}
