// Buffered writing to stdout/stderr: many small pieces become few large writes, and the caller
// learns when to wait for a slow reader of the pipe.
import type { Writable } from 'node:stream';

const SIZE = 256 * 1024;

export class Output {
  private buf = Buffer.allocUnsafe(SIZE);
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

  private send(b: Buffer): void {
    if (this.closed) return;
    if (!this.stream.write(b)) this.waiting = true;
  }

  /** Hands the buffered bytes to the stream. */
  flush(): void {
    if (this.pos === 0) return;
    // The stream may keep the buffer until written, so it gets this one and we take a new one.
    const b = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(SIZE);
    this.pos = 0;
    this.send(b);
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
