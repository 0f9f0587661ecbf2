/**
 * Stop a net.Socket from reading at once (pause() alone lets libuv keep filling the stream's
 * buffer up to its high-water mark): needed before a kernel takes the socket over, so no byte
 * meant for the kernel lands in our buffer. resume() starts reading again.
 */
import type net from "node:net";

export function stopReading(sock: net.Socket): void {
  sock.pause();
  const h = (sock as unknown as { _handle?: { reading?: boolean; readStop?: () => number } })._handle;
  if (h?.readStop && h.reading !== false) {
    h.readStop();
    h.reading = false; // so net.Socket's _read() calls readStart again on resume()
  }
}
