/**
 * Backpressure between one input and the output it feeds (the relay's two directions, the URB
 * server's answers): the input is paused only while more than STREAM_BUFFER bytes wait in the
 * output (not at the output's own 16 KiB high-water mark, which every 64 KiB URB crosses), and
 * resumed when the output drains.
 */
import type { ByteSink, ByteSource } from "./byte-stream.js";

/**
 * Bytes that may wait in one output stream before the input feeding it is paused (relay,
 * URB server): well above one 64 KiB URB with its header, so a URB never pauses the input
 * by itself, and small enough that a peer that stops reading costs us little.
 */
export const STREAM_BUFFER = 1 << 20;

const waiting = new WeakSet<ByteSource>();

/** Call after writing to `out` what `src` brought: pauses `src` if `out` is backlogged. */
export function pauseWhileBacklogged(src: ByteSource, out: ByteSink): void {
  // the common case first (called per message): nothing backlogged
  if (out.writableLength <= STREAM_BUFFER || !out.writableNeedDrain || waiting.has(src)) return;
  waiting.add(src);
  src.pause();
  out.once("drain", () => {
    waiting.delete(src);
    if (!src.destroyed) src.resume();
  });
}
