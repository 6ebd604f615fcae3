// Writes many files at once, with bounded memory: big ones streamed through the thread pool,
// small ones whole in native batches. Restoring a NAR is dominated by file creation (up to
// ≈0.5 ms each here), and creations overlap well.
import fs from 'node:fs';
import { FileBatch } from './file-batch.js';

const CREATE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

function p<T>(fn: (cb: (err: NodeJS.ErrnoException | null, v?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v as T))));
}

/** Writes every byte of `bufs` in order, with as few system calls as the kernel allows. */
async function writevAll(fd: number, bufs: Buffer[]): Promise<void> {
  let rest = bufs;
  while (rest.length > 0) {
    let n = await p<number>((cb) => fs.writev(fd, rest, null, cb));
    let i = 0;
    while (i < rest.length && n >= rest[i]!.length) n -= rest[i++]!.length;
    rest = rest.slice(i);
    if (n > 0) rest[0] = rest[0]!.subarray(n);
  }
}

export interface FileJob {
  /** Queues bytes for the file; resolves when memory allows more. */
  write(chunk: Buffer): Promise<void> | void;
  /** Queues chmod to `finalMode`, mtime 1 when asked, and close. */
  end(): Promise<void> | void;
}

/**
 * Files up to this size are written whole through the native batch (file-batch.ts): one
 * trip to a libuv thread per batch instead of five per file. Bigger ones are streamed.
 */
const SMALL_FILE = 256 << 10;
const BATCH_FILES = 256;
/** Memory a batch may keep alive (FileBatch.held) before it is written. */
const BATCH_BYTES = 4 << 20;

export class ParallelFileWriter {
  private pendingBytes = 0;
  /** Small files collected for the next native batch, and the batches before it, in order. */
  private batch: FileBatch | undefined;
  private batches: Promise<void> = Promise.resolve();
  private pendingFiles = 0;
  private error: unknown;
  private waiters: (() => void)[] = [];
  private readonly all = new Set<Promise<void>>();

  constructor(private readonly opts: { maxBytes?: number; maxFiles?: number; canonical?: boolean } = {}) {}

  private get maxBytes() {
    return this.opts.maxBytes ?? 16 << 20;
  }
  private get maxFiles() {
    return this.opts.maxFiles ?? 16;
  }

  private wake() {
    const w = this.waiters.splice(0);
    for (const f of w) f();
  }

  private async waitUntil(cond: () => boolean): Promise<void> {
    while (!cond()) {
      if (this.error) throw this.error;
      await new Promise<void>((r) => this.waiters.push(r));
    }
    if (this.error) throw this.error;
  }

  private track(pr: Promise<void>): Promise<void> {
    const t = pr.catch((e) => {
      this.error ??= e;
      this.wake();
    });
    this.all.add(t);
    void t.finally(() => this.all.delete(t));
    return t;
  }

  /**
   * Creates `file` (which must not exist, and is never followed if a symlink). `size`, when
   * known, lets a small file wait in memory for the next batch.
   */
  async begin(file: Buffer | string, mode: number, finalMode: number, size?: number): Promise<FileJob> {
    if (size !== undefined && size <= SMALL_FILE) return this.small(typeof file === 'string' ? Buffer.from(file) : file, mode, finalMode);
    await this.waitUntil(() => this.pendingFiles < this.maxFiles);
    this.pendingFiles++;
    const fd = p<number>((cb) => fs.open(file, CREATE, mode, cb));
    // The first write may come much later (the parser waits for input): without this the
    // open's failure would be an unhandled rejection that kills the process mid-restore.
    // The error still reaches the caller through `tail` and `track`.
    this.track(fd.then(() => undefined));
    // Chunks that arrive while a write is in flight go out together in the next writev: a
    // socket or pipe delivers 64 KiB at a time, and a write per chunk cost a thread-pool
    // round trip and a system call each (twice the system time of 1 MiB writes).
    let queue: Buffer[] = [];
    let queued = 0;
    let flushing: Promise<void> | undefined;
    const flush = async () => {
      const d = await fd;
      while (queue.length > 0) {
        const bufs = queue;
        const n = queued;
        queue = [];
        queued = 0;
        try {
          await writevAll(d, bufs);
        } finally {
          this.pendingBytes -= n;
          this.wake();
        }
      }
    };
    // One flush at a time; a chunk queued just as one ends starts the next.
    const kick = () => {
      if (flushing || queue.length === 0 || this.error) return;
      flushing = flush().finally(() => {
        flushing = undefined;
        kick();
      });
      this.track(flushing);
    };
    const written = async () => {
      while (flushing) await flushing;
    };
    const canonical = this.opts.canonical;
    return {
      write: (chunk) => {
        this.pendingBytes += chunk.length;
        queue.push(chunk);
        queued += chunk.length;
        kick();
        if (this.pendingBytes > this.maxBytes) return this.waitUntil(() => this.pendingBytes <= this.maxBytes);
        if (this.error) throw this.error;
      },
      end: () => {
        const done = written()
          .then(async () => {
            const d = await fd;
            if (canonical) {
              await p((cb) => fs.fchmod(d, finalMode, cb));
              await p((cb) => fs.futimes(d, 1, 1, cb));
            }
          })
          .finally(async () => {
            // Close whatever was opened, also after a failed write.
            const d = await fd.catch(() => undefined);
            if (d !== undefined) await p((cb) => fs.close(d, cb));
            this.pendingFiles--;
            this.wake();
          });
        this.track(done);
        if (this.error) throw this.error;
      },
    };
  }

  private small(file: Buffer, mode: number, finalMode: number): FileJob {
    const chunks: Buffer[] = [];
    return {
      write: (chunk) => {
        chunks.push(chunk);
        if (this.error) throw this.error;
      },
      end: () => {
        if (this.error) throw this.error;
        const b = (this.batch ??= new FileBatch(BATCH_FILES));
        const before = b.held;
        b.add(file, mode, this.opts.canonical ? finalMode : -1, chunks);
        this.pendingBytes += b.held - before;
        if (b.full || b.held >= BATCH_BYTES) return this.submit();
      },
    };
  }

  /**
   * Sends the batch being filled to the native writer once the one before it is written,
   * and resolves when that one is: one batch written while the next fills, so memory stays
   * bounded. Failures reach the caller as every other write's do (the next call, or drain).
   */
  private async submit(): Promise<void> {
    const b = this.batch;
    this.batch = undefined;
    if (!b) return;
    const before = this.batches;
    const run = (async () => {
      await before;
      if (this.error) return;
      await b.write(!!this.opts.canonical);
    })().finally(() => {
      this.pendingBytes -= b.held;
      this.wake();
    });
    this.batches = this.track(run);
    await before;
    if (this.error) throw this.error;
  }

  /** Waits for every queued write and close; throws the first error any of them hit. */
  async drain(): Promise<void> {
    if (!this.error) await this.submit();
    while (this.all.size > 0) await Promise.all([...this.all]);
    if (this.error) throw this.error;
  }

  /** Waits for everything in flight, ignoring errors (before removing a failed restore). */
  async settle(): Promise<void> {
    while (this.all.size > 0) await Promise.allSettled([...this.all]);
  }
}
