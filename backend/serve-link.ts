/**
 * Serve a userspace device (a model or a libusb device) over the qrexec link on fd 0/1: the
 * handshake line, then device/urb-server.ts until the link ends or a termination signal. A
 * refused frontend message becomes USBIP_ERR_RELAY_VIOLATION (exit status 2 in the CLI).
 *
 * A device whose completions come on an fd (usbfs: LibusbDevice.pollBy) is served by one poll()
 * loop on this thread (shared/fd-loop.ts) that reads the link, writes the answers and reaps the
 * URBs — no libuv stream between, no thread hop, no promise per completion: a reaped URB is
 * answered in the same turn (UrbHandle.listen), as is a request the device answers at once
 * (settled()). The event loop gets a turn after TURN_MS of continuous work and every IDLE_MS
 * while nothing happens: signals, the detach request, libusb's hotplug event and the few
 * requests that wait on it (SET_CONFIGURATION through libusb, CLEAR_HALT and the port reset on
 * koffi's worker thread) are never later than that. USBIP_QREXEC_FD_LOOP=0 keeps the link on libuv's streams
 * (the benchmarks' comparison).
 */
import type { UrbDevice } from "../device/urb-device.js";
import { UrbServer, type UrbServerResult } from "../device/urb-server.js";
import { RelayViolationError } from "../protocol/errors.js";
import { sendHandshake } from "./send-handshake.js";
import { openLink, pollable } from "../qrexec/link.js";
import { FdLoop } from "../shared/fd-loop.js";
import type { Logger } from "../shared/log.js";

/** How long the loop's poll() waits while nothing happens before the event loop gets a turn. */
const IDLE_MS = 10;
/** How long an ended session's answers may take to leave before the link is let go anyway. */
const FLUSH_MS = 2000;

export async function serveOnLink(device: UrbDevice, log: Logger, stop: Promise<unknown>, what: string): Promise<number> {
  // the loop only when the device's completions come on an fd it polls: a device that settles
  // its URBs on the event loop (a model, libusb's transfers) would wait for the loop's turns
  const loop = device.pollBy !== undefined && process.env.USBIP_QREXEC_FD_LOOP !== "0" && pollable(0) && pollable(1) ? new FdLoop({ idleMs: () => IDLE_MS }) : undefined;
  const r = loop !== undefined && device.pollBy!(loop) ? await serveOnFdLoop(loop, device, log, stop, what) : await serveOnStreams(device, log, stop, what);
  log.info(`session ended (${r.reason}): ${JSON.stringify(r.stats)}`);
  if (r.violation) throw new RelayViolationError(r.violation, "frontend");
  return 0;
}

async function serveOnStreams(device: UrbDevice, log: Logger, stop: Promise<unknown>, what: string): Promise<UrbServerResult> {
  const link = openLink();
  await sendHandshake(link.output, device);
  log.info(`${what}: devid ${device.devid} speed ${device.speed}; serving URBs`);
  const server = new UrbServer(device, link.input, link.output);
  server.start();
  stop.then(() => server.stop(), () => {});
  return server.done;
}

async function serveOnFdLoop(loop: FdLoop, device: UrbDevice, log: Logger, stop: Promise<unknown>, what: string): Promise<UrbServerResult> {
  await sendHandshake(1, device); // one write(2), before the loop makes fd 1 non-blocking
  const input = loop.reader(0);
  const output = loop.writer(1);
  log.info(`${what}: devid ${device.devid} speed ${device.speed}; serving URBs (one poll loop: the link and usbfs)`);
  const server = new UrbServer(device, input, output);
  server.start();
  loop.start();
  stop.then(() => server.stop(), () => {});
  try {
    return await server.done;
  } finally {
    // the answers still queued leave first (bounded: a frontend that stopped reading is not waited for)
    const deadline = Date.now() + FLUSH_MS;
    while (!loop.flushed && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
    loop.stop();
  }
}
