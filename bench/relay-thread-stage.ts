/**
 * relay-stage.ts's twin on the relay thread (relay/relay-thread.ts): the CMD_* of the file argv[2]
 * enter the client side through a socketpair (as vhci-hcd's would), RET_* are read from fd 0,
 * validated, re-encoded and written to fd 1 by the thread's poll() loop — the frontend relay's
 * hot direction as the product runs it on a qrexec link.
 */
import { openSync, readFileSync, writeSync } from "node:fs";
import { libc } from "../shared/libc.js";
import { RelayThread } from "../relay/relay-thread.js";

const [mine, theirs] = libc().socketpair();
writeSync(mine, readFileSync(process.argv[2]!)); // never ended: the client side stays open
const thread = new RelayThread(new URL("../frontend/import-relay-thread.js", import.meta.url));
thread.start({ fds: { clientIn: theirs, clientOut: 1, serverIn: 0, serverOut: openSync("/dev/null", "w") }, role: {} });
thread.done.then(
  (r) => {
    if (r.violation) {
      process.stderr.write(`relay-thread-stage: ${r.violation.error.message}\n`);
      process.exit(2);
    }
    process.exit(0);
  },
  (e: Error) => {
    process.stderr.write(`relay-thread-stage: ${e.message}\n`);
    process.exit(1);
  },
);
