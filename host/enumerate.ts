/** Read a device's descriptors over USB/IP the way a host enumerates it (GET_DESCRIPTOR on ep 0). */
import { DescType, parseConfigDescriptor, parseDeviceDescriptor, parseStringDescriptor, type ParsedConfig, type ParsedDevice } from "../usb/descriptors.js";
import { Request } from "../usb/setup.js";
import { UsbipError, RuntimeCode } from "../protocol/errors.js";
import { statusName } from "../protocol/constants.js";
import type { UsbHost } from "./usb-host.js";

export interface Enumerated {
  device: ParsedDevice;
  configs: ParsedConfig[];
  /** string descriptors by index (English, US) */
  strings: Record<number, string>;
}

async function getDescriptor(host: UsbHost, type: number, index: number, length: number, langid = 0): Promise<Buffer> {
  const r = await host.control({ bmRequestType: 0x80, bRequest: Request.GET_DESCRIPTOR, wValue: (type << 8) | index, wIndex: langid, wLength: length });
  if (r.status !== 0) throw new UsbipError(RuntimeCode.DEVICE, `GET_DESCRIPTOR(type ${type}, index ${index}) failed: ${statusName(r.status)}`);
  return r.data;
}

export async function enumerate(host: UsbHost): Promise<Enumerated> {
  const device = parseDeviceDescriptor(await getDescriptor(host, DescType.DEVICE, 0, 18));
  const configs: ParsedConfig[] = [];
  for (let i = 0; i < device.bNumConfigurations; i++) {
    const head = await getDescriptor(host, DescType.CONFIG, i, 9);
    const total = head.length >= 4 ? head.readUInt16LE(2) : 9;
    configs.push(parseConfigDescriptor(await getDescriptor(host, DescType.CONFIG, i, total)));
  }
  const strings: Record<number, string> = {};
  const indexes = new Set([device.iManufacturer, device.iProduct, device.iSerial, ...configs.flatMap((c) => [c.iConfiguration, ...c.interfaces.map((i) => i.iInterface)])]);
  indexes.delete(0);
  if (indexes.size > 0) {
    const langs = await getDescriptor(host, DescType.STRING, 0, 255).catch(() => Buffer.alloc(0));
    const lang = langs.length >= 4 ? langs.readUInt16LE(2) : 0x0409;
    for (const i of [...indexes].sort((a, b) => a - b)) {
      try {
        strings[i] = parseStringDescriptor(await getDescriptor(host, DescType.STRING, i, 255, lang));
      } catch {
        /* a device may refuse a string: shown as missing */
      }
    }
  }
  return { device, configs, strings };
}
