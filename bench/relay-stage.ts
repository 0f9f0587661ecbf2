/**
 * One relay stage for bench/relay.ts: the CMD_* of the file argv[2] enter the client side (as if
 * vhci-hcd had sent them), RET_* are read from stdin (server side), validated, re-encoded and
 * written to stdout — the frontend relay's hot direction, between real pipes.
 */
import { readFileSync } from "node:fs";
import net from "node:net";
import { PassThrough, Writable } from "node:stream";
import { UrbRelay } from "../relay/urb-relay.js";

const clientIn = new PassThrough();
clientIn.write(readFileSync(process.argv[2]!)); // never ended: the client side stays open
// stdout as a libuv pipe handle (net.Socket): non-blocking, writev for corked header+payload
const clientOut = new net.Socket({ fd: 1, readable: false, writable: true });
const serverIn = new net.Socket({ fd: 0, readable: true, writable: false });
const relay = new UrbRelay({ clientIn, clientOut, serverIn, serverOut: new Writable({ write: (_c, _e, cb) => cb() }) });
relay.start();
relay.done.then((r) => {
  if (r.violation) {
    process.stderr.write(`relay-stage: ${r.violation.error.message}\n`);
    process.exit(2);
  }
});
