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

/**
 * Stop reading for good: the socket now belongs to a kernel (usbip-host, vhci-hcd) and Node must
 * never take a byte of it again. stopReading() alone is not enough: the stream machinery calls
 * _read() again on its own (maybeReadMore after the last chunk, a read(0)), which restarts the
 * handle's reads, and a byte read then is a URB lost for the kernel. So _read becomes a no-op
 * as well (what Node itself does to a socket it passes to a child's stdio).
 */
export function giveUpReading(sock: net.Socket): void {
  stopReading(sock);
  (sock as unknown as { _read: () => void })._read = () => {};
}
