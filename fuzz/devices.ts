/**
 * The devices a kernel fuzzing campaign can drive, and which of them each target has in the VM
 * (the workloads themselves: test/vm/guest/fuzz-workloads.ts). camera and keyboard are
 * vhci-only: usbip-host refuses vhci devices, and neither qemu nor dummy_hcd offers one.
 */
export type FuzzTarget = "vhci" | "usbip-host";
export const FUZZ_DEVICES = ["disk", "sourcesink", "audio", "camera", "keyboard"] as const;
export type FuzzDevice = (typeof FUZZ_DEVICES)[number];
export const DEVICES_OF: Record<FuzzTarget, readonly FuzzDevice[]> = { vhci: FUZZ_DEVICES, "usbip-host": ["disk", "sourcesink", "audio"] };
