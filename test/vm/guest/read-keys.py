#!/usr/bin/python3
"""Read key presses from an evdev node: read-keys.py /dev/input/eventN COUNT TIMEOUT_S.
Prints the Linux key codes of the first COUNT presses (EV_KEY value 1), space-separated."""
import os, select, struct, sys, time
path, count, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
fd = os.open(path, os.O_RDONLY)
print("open", flush=True)
fmt = "llHHi"  # struct input_event on 64-bit: timeval, type, code, value
size = struct.calcsize(fmt)
codes, end, buf = [], time.time() + timeout, b""
while len(codes) < count and time.time() < end:
    r, _, _ = select.select([fd], [], [], max(0.0, end - time.time()))
    if not r:
        break
    buf += os.read(fd, size * 64)
    while len(buf) >= size:
        _, _, typ, code, value = struct.unpack(fmt, buf[:size])
        buf = buf[size:]
        if typ == 1 and value == 1:
            codes.append(code)
print(" ".join(map(str, codes)), flush=True)
