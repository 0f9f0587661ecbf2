/**
 * One relay stage for bench/relay.ts: the CMD_* of the file argv[2] enter the client side (as if
 * vhci-hcd had sent them), RET_* are read from stdin (server side), validated, re-encoded and
 * written to stdout — the frontend relay's hot direction, between real pipes, through the same
 * link code (qrexec/link.ts) the relay modes use on a qrexec link.
 */
import { readFileSync } from "node:fs";
import { PassThrough, Writable } from "node:stream";
import { openLink } from "../qrexec/link.js";
import { UrbRelay } from "../relay/urb-relay.js";

const clientIn = new PassThrough();
clientIn.write(readFileSync(process.argv[2]!)); // never ended: the client side stays open
const link = openLink(0, 1);
const relay = new UrbRelay({ clientIn, clientOut: link.output, serverIn: link.input, serverOut: new Writable({ write: (_c, _e, cb) => cb() }) });
relay.start();
relay.done.then((r) => {
  if (r.violation) {
    process.stderr.write(`relay-stage: ${r.violation.error.message}\n`);
    process.exit(2);
  }
});
