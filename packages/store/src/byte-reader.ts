// Exact-length reads over a byte stream, for the NAR and export parsers.
/** What sees consumed bytes: a node:crypto Hash, or a StreamSha256. */
export interface Tap {
  update(chunk: Buffer): unknown;
  /** A promise to await before more is read, when the tap has fallen behind. */
  backlogged?(): Promise<void> | undefined;
}

/** Raised when a stream ends before a read is satisfied; parsers turn it into their own error. */
export class UnexpectedEof extends Error {
  constructor(readonly wanted: number, readonly got: number) {
    super(`unexpected end of input (wanted ${wanted} more bytes, got ${got})`);
  }
}

/**
 * Pulls exact byte counts from an async iterable of chunks, never reading past what a
 * parser asks for, so one stream can carry several NARs (as an export does).
 * `taps` see every consumed byte (to hash a NAR while restoring it).
 */
export class ByteReader {
  private readonly it: AsyncIterator<Buffer | string>;
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private done = false;
  /** Bytes consumed so far: the offset named in error messages. */
  offset = 0;
  taps: Tap[] = [];
  /** Counts bytes consumed while set, for NAR sizes. */
  counting = 0;

  constructor(source: AsyncIterable<Buffer | string>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private available(): number {
    return this.buf.length - this.pos;
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    for (const t of this.taps) await t.backlogged?.();
    for (;;) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        return false;
      }
      const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
      if (chunk.length === 0) continue;
      this.buf = this.available() > 0 ? Buffer.concat([this.buf.subarray(this.pos), chunk]) : chunk;
      this.pos = 0;
      return true;
    }
  }

  private consume(n: number): Buffer {
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    for (const t of this.taps) t.update(out);
    return out;
  }

  /** Exactly n bytes, or UnexpectedEof. */
  async read(n: number): Promise<Buffer> {
    while (this.available() < n) {
      const have = this.available();
      if (!(await this.fill())) throw new UnexpectedEof(n, have);
    }
    return this.consume(n);
  }

  /** Streams exactly n bytes to `sink` in the chunks the source delivers. */
  async readInto(n: number, sink: (chunk: Buffer) => void | Promise<void>): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.available() === 0 && !(await this.fill())) throw new UnexpectedEof(left, 0);
      const take = Math.min(left, this.available());
      const r = sink(this.consume(take));
      if (r) await r;
      left -= take;
    }
  }

  /** True when the stream has no bytes left. */
  async atEnd(): Promise<boolean> {
    return this.available() === 0 && !(await this.fill());
  }
}
