// Buffered writing to stdout/stderr: many small pieces become few large writes, and the caller
// learns when to wait for a slow reader of the pipe.
import type { Writable } from 'node:stream';

const SIZE = 256 * 1024;

export class Output {
  private buf: Buffer = Buffer.allocUnsafe(SIZE);
  /** Buffers the stream has finished with, reused so that steady output allocates nothing. */
  private readonly spare: Buffer[] = [];
  private pos = 0;
  private waiting = false;
  /** Set when the reader of the stream went away (EPIPE): everything after is dropped. */
  closed = false;

  constructor(private readonly stream: Writable) {
    // EPIPE (`… | drover-trace | head`) and any other write error: the reader is gone, stop writing.
    stream.on('error', () => {
      this.closed = true;
    });
  }

  write(s: string): void {
    if (s.length * 3 > SIZE - this.pos) {
      this.flush();
      if (s.length * 3 > SIZE) {
        this.send(Buffer.from(s, 'utf8'));
        return;
      }
    }
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  bytes(src: Buffer, start: number, end: number): void {
    const n = end - start;
    if (n > SIZE - this.pos) {
      this.flush();
      if (n > SIZE) {
        this.send(Buffer.from(src.subarray(start, end)));
        return;
      }
    }
    this.pos += src.copy(this.buf, this.pos, start, end);
  }

  /**
   * Writes bytes of valid UTF-8 as the body of a JSON string, escaped exactly as JSON.stringify
   * escapes (control characters, quote, backslash); everything else is copied as it is.
   */
  jsonBytes(src: Buffer, start: number, end: number): void {
    // Worst case every byte becomes a six-byte \u00XX escape.
    const piece = 16 * 1024;
    for (let from = start; from < end; from += piece) {
      const to = Math.min(end, from + piece);
      if ((to - from) * 6 > SIZE - this.pos) this.flush();
      this.pos = escapeJson(src, from, to, this.buf, this.pos);
    }
  }

  private send(b: Buffer): void {
    if (this.closed) return;
    if (!this.stream.write(b)) this.waiting = true;
  }

  /** Hands the buffered bytes to the stream. */
  flush(): void {
    if (this.pos === 0) return;
    // The stream may keep the buffer until written, so it gets this one and we take a new one.
    const whole = this.buf;
    const b = whole.subarray(0, this.pos);
    this.buf = this.spare.pop() ?? Buffer.allocUnsafe(SIZE);
    this.pos = 0;
    if (this.closed) return;
    const ok = this.stream.write(b, () => {
      if (this.spare.length < 4) this.spare.push(whole);
    });
    if (!ok) this.waiting = true;
  }

  /** Resolves once the stream has room again (immediately when it has). */
  async drain(): Promise<void> {
    if (!this.waiting || this.closed) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.stream.off('drain', done);
        this.stream.off('close', done);
        this.stream.off('error', done);
        resolve();
      };
      this.stream.on('drain', done);
      this.stream.on('close', done);
      this.stream.on('error', done);
    });
    this.waiting = false;
  }
}

const NEEDS_ESCAPE = new Uint8Array(256).map((_, c) => (c < 0x20 || c === 0x22 || c === 0x5c ? 1 : 0));
/** JSON.stringify's escape for each byte that has one. */
const ESCAPES: (Buffer | undefined)[] = Array.from({ length: 256 }, (_, c) =>
  NEEDS_ESCAPE[c] ? Buffer.from(JSON.stringify(String.fromCharCode(c)).slice(1, -1)) : undefined);

/**
 * Copies src[start, end) into dst at pos with JSON escapes; returns the new position. Four bytes at a
 * time are tested for anything to escape (a SWAR test, exact for "is there one"); runs without are
 * copied natively. This is the hot loop of Guix logs in JSON.
 */
function escapeJson(src: Buffer, start: number, end: number, dst: Buffer, pos: number): number {
  let run = start;
  const escape = (j: number): void => {
    if (run < j) pos += src.copy(dst, pos, run, j);
    const e = ESCAPES[src[j]!]!;
    for (let k = 0; k < e.length; k++) dst[pos++] = e[k]!;
    run = j + 1;
  };
  let i = start;
  const head = Math.min(end, start + ((4 - ((src.byteOffset + start) & 3)) & 3));
  for (; i < head; i++) if (NEEDS_ESCAPE[src[i]!] !== 0) escape(i);
  const words = (end - i) >>> 2;
  if (words > 0) {
    const w32 = new Uint32Array(src.buffer, src.byteOffset + i, words);
    for (let k = 0; k < words; k++) {
      const w = w32[k]!;
      const quote = w ^ 0x22222222;
      const slash = w ^ 0x5c5c5c5c;
      // Any byte < 0x20, == '"' or == '\\' sets a high bit here.
      if ((((w - 0x20202020) & ~w) | ((quote - 0x01010101) & ~quote) | ((slash - 0x01010101) & ~slash)) & 0x80808080) {
        const base = i + (k << 2);
        for (let j = base; j < base + 4; j++) if (NEEDS_ESCAPE[src[j]!] !== 0) escape(j);
      }
    }
    i += words << 2;
  }
  for (; i < end; i++) if (NEEDS_ESCAPE[src[i]!] !== 0) escape(i);
  if (run < end) pos += src.copy(dst, pos, run, end);
  return pos;
}
