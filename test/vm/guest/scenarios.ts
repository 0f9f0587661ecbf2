/** The VM scenarios, in run order. */
import { gadgetSmoke } from "./scenario-gadget-smoke.js";
import { kernelStorageBackendDetach, kernelStorageFrontendDetach } from "./scenario-kernel-storage.js";
import { kernelUsbtest } from "./scenario-kernel-usbtest.js";
import { kernelBadHandshakes } from "./scenario-kernel-errors.js";
import { directUnlink } from "./scenario-direct-unlink.js";
import { relayScenarios } from "./scenario-relay.js";
import { hostileBackend, hostileFrontend } from "./scenario-hostile.js";
import { policyDeniesStorage } from "./scenario-policy.js";
import { benchThroughput } from "./bench-throughput.js";
import { virtualScenarios } from "./scenario-virtual.js";
import { tcpScenarios } from "./scenario-tcp.js";
import { userspaceScenarios } from "./scenario-userspace.js";
import { faultScenarios } from "./scenario-faults.js";
import { packageScenario, rpmPackageScenario } from "./scenario-package.js";
import { lifecycleScenarios } from "./scenario-lifecycle.js";
import { cycleScenario } from "./scenario-cycles.js";
import { seedParityDetachAll, seedParityQubesDbReset } from "./scenario-seed-parity.js";

export interface Scenario {
  name: string;
  /** run only when selected by name (diagnostics) */
  optional?: boolean;
  /** may resolve with a short note (a measurement) for the TAP line */
  run(): Promise<void | string>;
}

export const scenarios: Scenario[] = [gadgetSmoke, kernelStorageFrontendDetach, kernelStorageBackendDetach, kernelUsbtest, kernelBadHandshakes, seedParityQubesDbReset, seedParityDetachAll, ...relayScenarios, policyDeniesStorage, hostileFrontend, hostileBackend, ...virtualScenarios, ...tcpScenarios, ...userspaceScenarios, directUnlink, ...faultScenarios, packageScenario, rpmPackageScenario, ...lifecycleScenarios, cycleScenario, benchThroughput];
