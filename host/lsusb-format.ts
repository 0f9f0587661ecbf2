/** `lsusb -v`-style text of an enumerated device (the layout of usbutils' lsusb, abridged). */
import { endpointType } from "../usb/descriptors.js";
import type { Enumerated } from "./enumerate.js";

const hex = (n: number, w: number) => "0x" + n.toString(16).padStart(w, "0");
const bcd = (n: number) => `${(n >> 8).toString(16).padStart(2, " ")}.${(n & 0xff).toString(16).padStart(2, "0")}`;
const CLASS: Record<number, string> = { 0: "(Defined at Interface level)", 1: "Audio", 2: "Communications", 3: "Human Interface Device", 7: "Printer", 8: "Mass Storage", 9: "Hub", 10: "CDC Data", 11: "Chip/SmartCard", 14: "Video", 224: "Wireless", 239: "Miscellaneous Device", 254: "Application Specific Interface", 255: "Vendor Specific Class" };

function line(indent: number, field: string, value: string | number, text = ""): string {
  return `${" ".repeat(indent)}${field.padEnd(20)}${String(value).padStart(5)}${text ? " " + text : ""}`.trimEnd();
}

export function formatLsusb(e: Enumerated, header: { devid: number; speed: string }): string {
  const d = e.device;
  const s = (i: number) => (i === 0 ? "" : (e.strings[i] ?? "(error)"));
  const out: string[] = [];
  out.push(`Bus ${String(header.devid >>> 16).padStart(3, "0")} Device ${String(header.devid & 0xffff).padStart(3, "0")}: ID ${d.idVendor.toString(16).padStart(4, "0")}:${d.idProduct.toString(16).padStart(4, "0")} ${[s(d.iManufacturer), s(d.iProduct)].filter(Boolean).join(" ")}`);
  out.push(`Negotiated speed: ${header.speed} Mb/s (from the USB/IP handshake)`);
  out.push("Device Descriptor:");
  out.push(line(2, "bLength", 18));
  out.push(line(2, "bDescriptorType", 1));
  out.push(line(2, "bcdUSB", bcd(d.bcdUSB)));
  out.push(line(2, "bDeviceClass", d.bDeviceClass, CLASS[d.bDeviceClass] ?? ""));
  out.push(line(2, "bDeviceSubClass", d.bDeviceSubClass));
  out.push(line(2, "bDeviceProtocol", d.bDeviceProtocol));
  out.push(line(2, "bMaxPacketSize0", d.bMaxPacketSize0));
  out.push(line(2, "idVendor", hex(d.idVendor, 4)));
  out.push(line(2, "idProduct", hex(d.idProduct, 4)));
  out.push(line(2, "bcdDevice", bcd(d.bcdDevice)));
  out.push(line(2, "iManufacturer", d.iManufacturer, s(d.iManufacturer)));
  out.push(line(2, "iProduct", d.iProduct, s(d.iProduct)));
  out.push(line(2, "iSerial", d.iSerial, s(d.iSerial)));
  out.push(line(2, "bNumConfigurations", d.bNumConfigurations));
  for (const c of e.configs) {
    out.push("  Configuration Descriptor:");
    out.push(line(4, "bLength", 9));
    out.push(line(4, "bDescriptorType", 2));
    out.push(line(4, "wTotalLength", hex(c.wTotalLength, 4)));
    out.push(line(4, "bNumInterfaces", c.bNumInterfaces));
    out.push(line(4, "bConfigurationValue", c.bConfigurationValue));
    out.push(line(4, "iConfiguration", c.iConfiguration, s(c.iConfiguration)));
    out.push(line(4, "bmAttributes", hex(c.bmAttributes, 2)));
    if (c.bmAttributes & 0x40) out.push("      Self Powered");
    if (c.bmAttributes & 0x20) out.push("      Remote Wakeup");
    out.push(line(4, "MaxPower", `${c.bMaxPower * 2}mA`));
    for (const i of c.interfaces) {
      out.push("    Interface Descriptor:");
      out.push(line(6, "bLength", 9));
      out.push(line(6, "bDescriptorType", 4));
      out.push(line(6, "bInterfaceNumber", i.bInterfaceNumber));
      out.push(line(6, "bAlternateSetting", i.bAlternateSetting));
      out.push(line(6, "bNumEndpoints", i.endpoints.length));
      out.push(line(6, "bInterfaceClass", i.bInterfaceClass, CLASS[i.bInterfaceClass] ?? ""));
      out.push(line(6, "bInterfaceSubClass", i.bInterfaceSubClass));
      out.push(line(6, "bInterfaceProtocol", i.bInterfaceProtocol));
      out.push(line(6, "iInterface", i.iInterface, s(i.iInterface)));
      out.push(...classSpecific(6, i.extra));
      for (const ep of i.endpoints) {
        const t = endpointType(ep);
        out.push("      Endpoint Descriptor:");
        out.push(line(8, "bLength", ep.audio ? 9 : 7));
        out.push(line(8, "bDescriptorType", 5));
        out.push(line(8, "bEndpointAddress", hex(ep.bEndpointAddress, 2), `EP ${ep.bEndpointAddress & 0x0f} ${ep.bEndpointAddress & 0x80 ? "IN" : "OUT"}`));
        out.push(line(8, "bmAttributes", ep.bmAttributes));
        out.push(`          Transfer Type            ${t === "iso" ? "Isochronous" : t[0]!.toUpperCase() + t.slice(1)}`);
        out.push(line(8, "wMaxPacketSize", hex(ep.wMaxPacketSize, 4), `${1 + ((ep.wMaxPacketSize >> 11) & 3)}x ${ep.wMaxPacketSize & 0x7ff} bytes`));
        out.push(line(8, "bInterval", ep.bInterval));
        if (ep.audio) {
          out.push(line(8, "bRefresh", ep.audio.bRefresh));
          out.push(line(8, "bSynchAddress", ep.audio.bSynchAddress));
        }
        out.push(...classSpecific(8, ep.extra));
      }
    }
  }
  return out.join("\n");
}

/** Class-specific descriptors (a run of [bLength, type, …]) as one line each, in hex. */
function classSpecific(indent: number, bytes: Buffer | undefined): string[] {
  const out: string[] = [];
  for (let p = 0; bytes !== undefined && p + 2 <= bytes.length && bytes[p]! >= 2; p += bytes[p]!) {
    const d = bytes.subarray(p, p + bytes[p]!);
    out.push(`${" ".repeat(indent)}(class-specific descriptor type ${hex(d[1]!, 2)}, ${d.length} bytes: ${d.toString("hex")})`);
  }
  return out;
}
