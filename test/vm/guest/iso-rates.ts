/**
 * What the iso scenarios measured in this boot, by path, for the iso bench (bench-iso.ts):
 * camera whole frames/s, microphone sample frames/s, and the share of qemu's audio ramp that
 * arrived. The scenarios record; only the bench prints.
 */
export const isoRates: Record<string, number> = {};

export function recordRate(key: string, value: number): void {
  isoRates[key] = Math.round(value * 1000) / 1000;
}
