/** The VM scenarios, in run order. */
import { gadgetSmoke } from "./scenario-gadget-smoke.js";
import { kernelStorageBackendDetach, kernelStorageFrontendDetach } from "./scenario-kernel-storage.js";

export interface Scenario {
  name: string;
  run(): Promise<void>;
}

export const scenarios: Scenario[] = [gadgetSmoke, kernelStorageFrontendDetach, kernelStorageBackendDetach];
