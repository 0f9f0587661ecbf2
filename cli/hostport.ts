/** HOST:PORT arguments ([::1]:3240 for IPv6); `serve` also takes a bare PORT (every address). */
import { UsageError } from "./errors.js";

export function parseHostPort(cmd: string, s: string, defaultPort = 3240): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.%A-Za-z]+)\]|([^:[\]\s]+))(?::(\d{1,5}))?$/.exec(s);
  const port = m?.[3] === undefined ? defaultPort : Number(m[3]);
  if (!m || !(port >= 0 && port <= 65535)) throw new UsageError(`${cmd}: --tcp must be HOST:PORT (e.g. 127.0.0.1:3240 or [::1]:3240), not "${s}"`);
  return { host: m[1] ?? m[2]!, port };
}

/** `serve --tcp`: [HOST:]PORT; a bare PORT (digits only) listens on every address. */
export function parseListenAddress(cmd: string, s: string): { host: string | undefined; port: number } {
  if (/^\d{1,5}$/.test(s)) {
    const port = Number(s);
    if (port > 65535) throw new UsageError(`${cmd}: --tcp port must be 0..65535, not "${s}"`);
    return { host: undefined, port };
  }
  return parseHostPort(cmd, s);
}

/** usbip(8)'s --tcp-port P (default 3240). */
export function parseTcpPort(cmd: string, s: string | undefined): number {
  const port = s ?? "3240";
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535 || Number(port) === 0) throw new UsageError(`${cmd}: --tcp-port must be 1..65535, not "${port}"`);
  return Number(port);
}
