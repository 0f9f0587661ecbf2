/**
 * The little of a byte stream the relay and backpressure use: Node's Readable and Writable have
 * it, and so have the fd loop's readers and writers (shared/fd-loop.ts), which move bytes with
 * poll(), read() and writev() on a worker thread instead of libuv's stream handles.
 */

/** A source of chunks: "data" (Buffer), "end" (EOF), "error"; pause() stops "data" until resume(). */
export interface ByteSource {
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
  pause(): unknown;
  resume(): unknown;
  destroy(): unknown;
  readonly destroyed: boolean;
}

/**
 * A sink: write() keeps a reference to the buffer until it is written (callers must not reuse
 * it); cork()/uncork() gather the writes between them into one system call; "drain" when the
 * backlog (writableLength) is gone; end() sends EOF after the backlog; destroy() drops it.
 */
export interface ByteSink {
  write(chunk: Buffer): boolean;
  cork(): void;
  uncork(): void;
  end(): unknown;
  destroy(): unknown;
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
  once(event: string, listener: (...args: any[]) => void): unknown;
  readonly writableLength: number;
  readonly writableNeedDrain: boolean;
}
