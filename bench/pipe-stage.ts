/**
 * The floor of any Node.js relay for bench/relay.ts: stdin piped to stdout through the same libuv
 * pipe handles the relay stage uses, with no decoding at all.
 */
import net from "node:net";

const out = new net.Socket({ fd: 1, readable: false, writable: true });
new net.Socket({ fd: 0, readable: true, writable: false }).pipe(out);
