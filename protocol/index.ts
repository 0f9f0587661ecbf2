/** protocol/: the pure USB/IP codec (no fs, net, child_process or timers). */
export * from "./constants.js";
export * from "./errors.js";
export * from "./messages.js";
export * from "./limits.js";
export * from "./speed.js";
export * from "./handshake.js";
export * from "./urb-table.js";
export * from "./iso.js";
export * from "./byte-queue.js";
export * from "./stream-decoder.js";
export * from "./client-decoder.js";
export * from "./server-decoder.js";
export * from "./encoder.js";
export * from "./summary.js";
export * from "./capture.js";
export * from "./relay-rules.js";
export * from "./policy.js";
