// Writes many files at once through the thread pool, with bounded memory: restoring a NAR
// is dominated by file creation (≈0.5 ms each here), and creations overlap well.
import fs from 'node:fs';

const CREATE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

function p<T>(fn: (cb: (err: NodeJS.ErrnoException | null, v?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v as T))));
}

async function writeAll(fd: number, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) off += await p<number>((cb) => fs.write(fd, buf, off, buf.length - off, null, cb));
}

export interface FileJob {
  /** Queues bytes for the file; resolves when memory allows more. */
  write(chunk: Buffer): Promise<void> | void;
  /** Queues chmod to `finalMode`, mtime 1 when asked, and close. */
  end(): Promise<void> | void;
}

export class ParallelFileWriter {
  private pendingBytes = 0;
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

  /** Creates `file` (which must not exist, and is never followed if a symlink). */
  async begin(file: Buffer | string, mode: number, finalMode: number): Promise<FileJob> {
    await this.waitUntil(() => this.pendingFiles < this.maxFiles);
    this.pendingFiles++;
    const fd = p<number>((cb) => fs.open(file, CREATE, mode, cb));
    // The first write may come much later (the parser waits for input): without this the
    // open's failure would be an unhandled rejection that kills the process mid-restore.
    // The error still reaches the caller through `tail` and `track`.
    this.track(fd.then(() => undefined));
    let tail: Promise<unknown> = fd;
    const canonical = this.opts.canonical;
    return {
      write: (chunk) => {
        this.pendingBytes += chunk.length;
        tail = tail.then(async () => {
          try {
            await writeAll(await fd, chunk);
          } finally {
            this.pendingBytes -= chunk.length;
            this.wake();
          }
        });
        this.track(tail as Promise<void>);
        if (this.pendingBytes > this.maxBytes) return this.waitUntil(() => this.pendingBytes <= this.maxBytes);
        if (this.error) throw this.error;
      },
      end: () => {
        const done = tail
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

  /** Waits for every queued write and close; throws the first error any of them hit. */
  async drain(): Promise<void> {
    while (this.all.size > 0) await Promise.all([...this.all]);
    if (this.error) throw this.error;
  }

  /** Waits for everything in flight, ignoring errors (before removing a failed restore). */
  async settle(): Promise<void> {
    while (this.all.size > 0) await Promise.allSettled([...this.all]);
  }
}
