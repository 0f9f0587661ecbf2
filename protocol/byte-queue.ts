/**
 * A FIFO of pushed chunks with zero-copy reads: a read that lies within one chunk returns a
 * view into it; only a read that spans chunks copies (into a fresh buffer, never a shared one,
 * so a view handed out earlier is never overwritten). Pushed chunks are never modified.
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  /** index of the first unread chunk in `chunks` */
  private first = 0;
  /** read position inside chunks[first] */
  private pos = 0;
  /** unread bytes */
  length = 0;
  /** absolute stream offset of the next unread byte */
  offset = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Drop everything and restart offsets at `offset`. */
  reset(offset = 0): void {
    this.chunks = [];
    this.first = 0;
    this.pos = 0;
    this.length = 0;
    this.offset = offset;
  }

  /** The chunk holding the next unread byte, and the position in it (for hot-path parsing). */
  headChunk(): Buffer | undefined {
    return this.chunks[this.first];
  }
  headPos(): number {
    return this.pos;
  }

  /** Byte at unread index i (i < length). */
  byteAt(i: number): number {
    let k = this.first;
    let p = this.pos + i;
    for (;;) {
      const c = this.chunks[k]!;
      if (p < c.length) return c[p]!;
      p -= c.length;
      k++;
    }
  }

  /** Big-endian u32 at unread index i (i + 4 <= length). */
  u32At(i: number): number {
    const c = this.chunks[this.first]!;
    const p = this.pos + i;
    if (p + 4 <= c.length) return ((c[p]! << 24) | (c[p + 1]! << 16) | (c[p + 2]! << 8) | c[p + 3]!) >>> 0;
    return ((this.byteAt(i) << 24) | (this.byteAt(i + 1) << 16) | (this.byteAt(i + 2) << 8) | this.byteAt(i + 3)) >>> 0;
  }

  /** Big-endian u16 at unread index i. */
  u16At(i: number): number {
    return (this.byteAt(i) << 8) | this.byteAt(i + 1);
  }

  /** n unread bytes as one buffer without consuming: a view when they lie in one chunk, else a copy. */
  peek(n: number): Buffer {
    return this.peekAt(0, n);
  }

  /** n bytes from unread index i, without consuming: a view when they lie in one chunk, else a fresh copy. */
  peekAt(i: number, n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    let k = this.first;
    let p = this.pos + i;
    for (;;) {
      const c = this.chunks[k]!;
      if (p < c.length) break;
      p -= c.length;
      k++;
    }
    const c = this.chunks[k]!;
    if (p + n <= c.length) return c.subarray(p, p + n);
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    while (written < n) {
      const src = this.chunks[k]!;
      const m = Math.min(src.length - p, n - written);
      src.copy(out, written, p, p + m);
      written += m;
      k++;
      p = 0;
    }
    return out;
  }

  /** Consume n bytes. */
  skip(n: number): void {
    this.length -= n;
    this.offset += n;
    let p = this.pos + n;
    for (;;) {
      const c = this.chunks[this.first];
      if (c === undefined || p < c.length) break;
      p -= c.length;
      this.chunks[this.first] = undefined as unknown as Buffer; // release the chunk
      this.first++;
    }
    this.pos = p;
    if (this.first > 64 && this.first * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.first);
      this.first = 0;
    }
  }

  /** Consume n bytes as one buffer (view if within a chunk, else a copy). */
  take(n: number): Buffer {
    const b = this.peek(n);
    this.skip(n);
    return b;
  }

  /**
   * n bytes from unread index i as zero-copy segments (views into the pushed chunks), without
   * consuming. A range that ends at the last byte is found from the end: its cost is the number
   * of chunks it covers, not the number before it (the relay's cut-through asks for the newest
   * bytes of a message after every chunk; walking from the front made 1-byte chunks quadratic).
   */
  peekSegments(i: number, n: number): Buffer[] {
    if (n <= 0) return [];
    if (i + n === this.length) {
      const out: Buffer[] = [];
      let k = this.chunks.length - 1;
      let left = n;
      while (left > 0) {
        const c = this.chunks[k]!;
        const start = k === this.first ? this.pos : 0;
        const m = Math.min(c.length - start, left);
        out.push(c.subarray(c.length - m));
        left -= m;
        k--;
      }
      return out.reverse();
    }
    const out: Buffer[] = [];
    let k = this.first;
    let p = this.pos + i;
    while (n > 0) {
      const c = this.chunks[k]!;
      if (p >= c.length) {
        p -= c.length;
        k++;
        continue;
      }
      const m = Math.min(c.length - p, n);
      out.push(c.subarray(p, p + m));
      n -= m;
      k++;
      p = 0;
    }
    return out;
  }

  /** Consume n bytes as zero-copy segments (views into the pushed chunks). */
  takeSegments(n: number): Buffer[] {
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const c = this.chunks[this.first]!;
      const m = Math.min(c.length - this.pos, left);
      out.push(c.subarray(this.pos, this.pos + m));
      this.skip(m);
      left -= m;
    }
    return out;
  }
}
