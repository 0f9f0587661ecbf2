/**
 * The frontend relay's worker thread (relay/relay-thread.ts): its one role part is the device
 * policy's screen of descriptor answers (protocol/policy.ts), built here from the policy's data.
 */
import { serveRelayThread } from "../relay/relay-thread.js";
import { policyScreen, type Policy } from "../protocol/policy.js";

serveRelayThread((data) => ({ screen: policyScreen((data as { policy?: Policy }).policy) }));
