#!/usr/bin/python3
"""VM helper: occupy every free port of vhci-hcd's high-speed hub(s) with a socket nobody answers
(so an import finds the hub full). Prints "filled N" and waits for SIGTERM, then closes the
sockets: vhci-hcd sees EOF and frees each port itself."""
import glob, signal, socket

ports = []
for f in sorted(glob.glob("/sys/devices/platform/vhci_hcd.0/status*")):
    for line in open(f).read().splitlines():
        t = line.split()
        if len(t) >= 3 and t[0] == "hs" and t[2] == "004":
            ports.append(int(t[1]))
held = []
for i, port in enumerate(ports):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with open("/sys/devices/platform/vhci_hcd.0/attach", "w") as f:
        f.write("%d %d %d %d" % (port, b.fileno(), 0x70000 + i + 1, 3))  # speed 3: high
    held.append((a, b))
print("filled %d" % len(held), flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
for a, b in held:
    a.close()
    b.close()
