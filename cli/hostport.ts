/** HOST:PORT arguments ([::1]:3240 for IPv6). */
import { UsageError } from "./errors.js";

export function parseHostPort(cmd: string, s: string, defaultPort = 3240): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(s);
  const port = m?.[3] === undefined ? defaultPort : Number(m[3]);
  if (!m || !(port >= 0 && port <= 65535)) throw new UsageError(`${cmd}: --tcp must be HOST:PORT (e.g. 127.0.0.1:3240), not "${s}"`);
  return { host: m[1] ?? m[2]!, port };
}
