/**
 * A real pipe(2)-like pair of fds. Node cannot call pipe(), and libuv's 'pipe' stdio is a Unix
 * socketpair, so `qrexec-sim --link pipes` builds each direction from a FIFO: opened O_RDWR
 * first (so neither blocking open waits), then the read and write ends, then the O_RDWR fd is
 * closed so EOF works. The FIFO is unlinked at once; the fds stay valid.
 */
import { execFileSync } from "node:child_process";
import { closeSync, constants, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export interface PipeFds {
  readFd: number;
  writeFd: number;
}

export function makePipe(): PipeFds {
  const dir = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-pipe-"));
  const fifo = path.join(dir, "p");
  try {
    execFileSync("mkfifo", ["-m", "600", fifo]);
    const hold = openSync(fifo, constants.O_RDWR);
    const readFd = openSync(fifo, constants.O_RDONLY);
    const writeFd = openSync(fifo, constants.O_WRONLY);
    closeSync(hold);
    return { readFd, writeFd };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
