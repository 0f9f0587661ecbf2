#!/usr/bin/python3
"""Small kernel helpers Node cannot do without a native addon.

  usbfs.py reset /dev/bus/usb/BBB/DDD   USBDEVFS_RESET on the device node
  usbfs.py read-line [MAX]             read fd 0 one byte at a time up to and including the
                                        first '\n' (at most MAX bytes, default 256) and copy the
                                        bytes to stdout: never a byte past the newline. Exit 3 on
                                        EOF before any newline, 4 if MAX bytes had no newline.
  usbfs.py write PATH TEXT              one write(2) of TEXT to PATH (a sysfs file), from this
                                        process: the fd-handover files (vhci attach,
                                        usbip_sockfd) resolve fd numbers in the writer's table,
                                        so the caller passes the socket as this helper's fd 3.
                                        On failure prints the errno name and exits 1.
  usbfs.py wait-hup [FD]                block until FD (default 0), a stream socket, reports
                                        hang-up (POLLHUP/POLLRDHUP/POLLERR); never reads from it,
                                        so bytes meant for the kernel (usbip-host, vhci-hcd) are
                                        not consumed. Exits 0 on hang-up.
  usbfs.py guard CMD [ARG...]           the orphan guard of a long-lived command: block reading
                                        fd 3 (a pipe whose other end only the parent holds).
                                        SIGTERM (the parent finished its own cleanup) exits 0
                                        quietly; EOF on fd 3 without it means the parent died
                                        (kill -9, crash), so exec CMD to clean up what it left
                                        (a vhci port, a statefile, a device on usbip-host).
                                        SIGINT and SIGHUP are ignored.
"""
import errno
import fcntl
import os
import select
import signal
import sys

USBDEVFS_RESET = (ord("U") << 8) | 20  # _IO('U', 20)


def reset(path):
    fd = os.open(path, os.O_WRONLY)
    try:
        fcntl.ioctl(fd, USBDEVFS_RESET, 0)
    finally:
        os.close(fd)


def wait_hup(fd):
    p = select.poll()
    p.register(fd, select.POLLHUP | select.POLLRDHUP | select.POLLERR)
    while True:
        for _, ev in p.poll():
            if ev & (select.POLLHUP | select.POLLRDHUP | select.POLLERR | select.POLLNVAL):
                return


def guard(cmd):
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while True:
        try:
            if not os.read(3, 64):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    sys.stderr.write("usbip-qrexec: guard: process %d ended without cleaning up; running: %s\n" % (int(os.environ.get("USBIP_QREXEC_GUARDED_PID", "0")), " ".join(cmd)))
    sys.stderr.flush()
    os.execvp(cmd[0], cmd)


def read_line(limit):
    got = bytearray()
    while len(got) < limit:
        try:
            b = os.read(0, 1)
        except BlockingIOError:
            select.select([0], [], [])
            continue
        if not b:
            os.write(1, bytes(got))
            return 3
        got += b
        if b == b"\n":
            os.write(1, bytes(got))
            return 0
    os.write(1, bytes(got))
    return 4


def write(path, text):
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        sys.stderr.write("%s\n" % errno.errorcode.get(e.errno, str(e.errno)))
        return 1
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "reset":
        reset(argv[2])
    elif len(argv) >= 4 and argv[1] == "write":
        return write(argv[2], argv[3])
    elif len(argv) >= 2 and argv[1] == "read-line":
        return read_line(int(argv[2]) if len(argv) > 2 else 256)
    elif len(argv) >= 3 and argv[1] == "guard":
        guard(argv[2:])
    elif len(argv) >= 2 and argv[1] == "wait-hup":
        wait_hup(int(argv[2]) if len(argv) > 2 else 0)
    else:
        sys.stderr.write(__doc__)
        return 64
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except BrokenPipeError:
        # the caller went away (ended by a signal): nothing to say, nobody to say it to
        sys.exit(1)
    except OSError as e:
        sys.stderr.write("usbfs.py: %s\n" % e)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
