#!/bin/sh
# Qubes suspend hook (/etc/qubes/suspend-pre.d/usb-detach-all.sh): stop every USB export of
# this qube before suspend, giving each device back to its driver (the seed's usb-detach-all).
exec /usr/bin/usbip-qrexec detach --all
