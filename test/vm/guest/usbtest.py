#!/usr/bin/python3
"""Drive the kernel's usbtest driver: USBDEVFS_IOCTL carrying USBTEST_REQUEST.

usage: usbtest.py /dev/bus/usb/BBB/DDD TEST[,TEST...] [ITERATIONS [LENGTH [SGLEN]]]
(LENGTH 1024 and SGLEN 32 by default; SGLEN is also the queue depth of the queued tests.)
Prints one JSON object per test: {"test": N, "ok": bool, "errno": name|null, "seconds": t,
"kernelSeconds": the duration usbtest measured itself}.
struct usbtest_param_32 is seven 32-bit fields (test_num, iterations, length, vary, sglen,
duration_sec, duration_usec); with five fields the ioctl answers EOPNOTSUPP.
"""
import ctypes
import errno
import fcntl
import json
import os
import struct
import sys
import time


def _iowr(t, nr, size):
    return (3 << 30) | (size << 16) | (ord(t) << 8) | nr


class Param(ctypes.Structure):
    _fields_ = [("test_num", ctypes.c_uint32), ("iterations", ctypes.c_uint32), ("length", ctypes.c_uint32),
                ("vary", ctypes.c_uint32), ("sglen", ctypes.c_uint32), ("duration_sec", ctypes.c_int32),
                ("duration_usec", ctypes.c_int32)]


class UsbdevfsIoctl(ctypes.Structure):
    _fields_ = [("ifno", ctypes.c_int), ("ioctl_code", ctypes.c_int), ("data", ctypes.c_void_p)]


USBTEST_REQUEST = _iowr("U", 100, ctypes.sizeof(Param))
USBDEVFS_IOCTL = _iowr("U", 18, ctypes.sizeof(UsbdevfsIoctl))


def run(fd, test, iterations, length=1024, sglen=32):
    # vary must stay below length: ctrl_out() (cases 14, 21) answers EINVAL otherwise
    p = Param(test, iterations, length, length // 2, sglen, 0, 0)
    req = UsbdevfsIoctl(0, USBTEST_REQUEST, ctypes.cast(ctypes.pointer(p), ctypes.c_void_p))
    t0 = time.time()
    try:
        fcntl.ioctl(fd, USBDEVFS_IOCTL, req, True)
        return {"test": test, "ok": True, "errno": None, "seconds": round(time.time() - t0, 2),
                "kernelSeconds": p.duration_sec + p.duration_usec / 1e6}
    except OSError as e:
        return {"test": test, "ok": False, "errno": errno.errorcode.get(e.errno, str(e.errno)), "seconds": round(time.time() - t0, 2)}


def main():
    dev = sys.argv[1]
    tests = [int(x) for x in sys.argv[2].split(",")]
    iterations = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    length = int(sys.argv[4]) if len(sys.argv) > 4 else 1024
    sglen = int(sys.argv[5]) if len(sys.argv) > 5 else 32
    fd = os.open(dev, os.O_RDWR)
    for t in tests:
        r = run(fd, t, iterations, length, sglen)
        print(json.dumps(r), flush=True)
        sys.stderr.write("usbtest %s\n" % json.dumps(r))
    os.close(fd)


if __name__ == "__main__":
    main()
