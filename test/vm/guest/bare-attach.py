#!/usr/bin/python3
"""The bare attach, for the attach-time bench: only the sysfs writes an export and an import
make, from one short script, no checks. usage: bare-attach.py BUSID PORT. Binds BUSID to
usbip-host, hands one end of a socketpair to it and the other to vhci-hcd on PORT, prints
"attached", waits for SIGTERM, then detaches the port and gives the device back to its driver."""
import os, signal, socket, sys
busid, port = sys.argv[1], int(sys.argv[2])
dev = "/sys/bus/usb/devices/" + busid
def put(path, text):
    with open(path, "w") as f:
        f.write(text)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT])
busnum, devnum = int(open(dev + "/busnum").read()), int(open(dev + "/devnum").read())
speed = {"1.5": 1, "12": 2, "480": 3, "5000": 5}[open(dev + "/speed").read().strip()]
put("/sys/bus/usb/drivers/usb/unbind", busid)
put("/sys/bus/usb/drivers/usbip-host/match_busid", "add " + busid)
put("/sys/bus/usb/drivers/usbip-host/bind", busid)
a, b = socket.socketpair()
put(dev + "/usbip_sockfd", str(a.fileno()))
put("/sys/devices/platform/vhci_hcd.0/attach", "%d %d %d %d" % (port, b.fileno(), (busnum << 16) | devnum, speed))
print("attached", flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
put("/sys/devices/platform/vhci_hcd.0/detach", str(port))
a.close()
b.close()
put("/sys/bus/usb/drivers/usbip-host/unbind", busid)
put("/sys/bus/usb/drivers/usbip-host/match_busid", "del " + busid)
put("/sys/bus/usb/drivers_probe", busid)
