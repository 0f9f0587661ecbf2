/**
 * Waiting for a socket's hang-up without reading it (once an fd is handed over, its bytes are
 * the kernel's): each watched socket is dup'ed (the caller may close its own fd meanwhile), and
 * all of this process's watches share one poll() on a koffi worker thread, woken through an
 * eventfd when the set changes — so any number of watches (serve's sessions) hold one pool
 * thread between them. A socket has hung up when poll reports POLLHUP, POLLRDHUP (the peer shut
 * its writing side; usbip-host and vhci-hcd do SHUT_RDWR on teardown), POLLERR or POLLNVAL.
 */
import { closeSync, readSync, writeSync } from "node:fs";
import type { Socket } from "node:net";
import { socketFd } from "../shared/socketpair.js";
import { libc, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLRDHUP } from "../shared/libc.js";

export interface HangupWatch {
  /** resolves when the socket has hung up, the watch was stopped, or it could not run */
  done: Promise<void>;
  stop(): void;
}

interface Entry {
  fd: number;
  end: () => void;
}

const HUNG = POLLHUP | POLLRDHUP | POLLERR | POLLNVAL;
const watching = new Set<Entry>();
/** dup'ed fds whose watch ended while a poll may still have them: closed when it returns */
const toClose: number[] = [];
let wake = -1;
let polling = false;

export function watchHangup(target: number | Socket): HangupWatch {
  let entry: Entry | undefined;
  const done = new Promise<void>((resolve) => {
    let fd = -1;
    try {
      fd = libc().dup(typeof target === "number" ? target : socketFd(target));
    } catch {
      /* no koffi, or the socket is gone */
    }
    if (fd < 0) return resolve();
    const e: Entry = {
      fd,
      end: () => {
        if (!watching.delete(e)) return;
        toClose.push(e.fd);
        if (polling) poke();
        else flush();
        resolve();
      },
    };
    entry = e;
    watching.add(e);
    if (polling) poke();
    else loop();
  });
  return { done, stop: () => entry?.end() };
}

function poke(): void {
  const one = Buffer.alloc(8);
  one.writeBigUInt64LE(1n);
  try {
    writeSync(wake, one);
  } catch {
    /* the counter is full of wake-ups already */
  }
}

function flush(): void {
  for (const fd of toClose.splice(0)) closeSync(fd);
}

function loop(): void {
  flush();
  if (polling || watching.size === 0) return;
  const c = libc();
  if (wake < 0) wake = c.eventfd();
  const list = [...watching];
  polling = true;
  c.pollManyAsync([{ fd: wake, events: POLLIN }, ...list.map((e) => ({ fd: e.fd, events: POLLRDHUP }))], -1).then(
    (revents) => {
      polling = false;
      if ((revents[0]! & POLLIN) !== 0) {
        try {
          readSync(wake, Buffer.alloc(8));
        } catch {
          /* drained */
        }
      }
      list.forEach((e, i) => {
        if ((revents[i + 1]! & HUNG) !== 0) e.end();
      });
      loop();
    },
    () => {
      polling = false;
      for (const e of [...watching]) e.end();
      flush();
    },
  );
}
