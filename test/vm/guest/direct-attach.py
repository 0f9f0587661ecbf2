#!/usr/bin/python3
"""Diagnostic: connect usbip-host and vhci-hcd directly over one socketpair (no userspace in
between), the kernel's own fast path. usage: direct-attach.py BUSID PORT DEVID SPEED; stays
until killed, then detaches PORT."""
import os, signal, socket, sys, time
busid, port, devid, speed = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
with open("/sys/bus/usb/devices/%s/usbip_sockfd" % busid, "w") as f:
    f.write(str(a.fileno()))
with open("/sys/devices/platform/vhci_hcd.0/attach", "w") as f:
    f.write("%s %d %s %s" % (port, b.fileno(), devid, speed))
print("attached", flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
