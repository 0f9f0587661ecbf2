/**
 * A connected pair of Unix stream sockets. Node has no socketpair(); a listening Unix socket in
 * a private temporary directory, one connect and one accept give the same thing. Either end can
 * be passed in a child's stdio array (the child gets a dup of it as that fd).
 */
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

export async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const dir = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-sp-"));
  const file = path.join(dir, "s");
  try {
    const server = net.createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(file, () => resolve());
    });
    const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve));
    const client = net.connect({ path: file, allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
    });
    const other = await accepted;
    server.close();
    return [client, other];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The descriptor behind a connected net.Socket (Node exposes it only on the handle). */
export function socketFd(sock: net.Socket): number {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) throw new Error("the socket has no file descriptor");
  return fd;
}
