// A stream of bytes and whole files to a file descriptor, written in batches by the native
// gather writer (fd-gather.ts) while this thread prepares the next batch.
import { DroverError, NarFormatError } from './errors.js';
import { GatherPlan, type GatherError } from './fd-gather.js';
import { shrank } from './nar-walk.js';

/**
 * Files per batch: enough to keep the writer thread busy while this thread fills the next
 * batch, few enough that the first bytes leave early. (1 GB in 20k files: 64–1024 all within noise.)
 */
const BATCH_FILES = 256;
/** Path bytes per batch; a path is under PATH_MAX (4096), or lstat refused it already. */
const PATH_ARENA = 256 << 10;
/** Bytes other than file contents per batch (trees of symlinks or empty files). */
const BATCH_TOKENS = 1 << 20;

/**
 * Memory is two batches: one being written, one being filled. Bytes pushed must not change
 * until written; a file must keep the size given (one that shrinks is a NarFormatError, exit
 * 2; one that cannot be read an I/O error naming `what`, exit 1).
 */
export class GatherStream {
  private readonly plans = [new GatherPlan(BATCH_FILES, PATH_ARENA), new GatherPlan(BATCH_FILES, PATH_ARENA)];
  private plan = this.plans[0]!;
  private writing: { done: Promise<void>; plan: GatherPlan } | undefined;

  constructor(
    private readonly fd: number,
    /** What is being written, for messages (the NAR's root, the export). */
    private readonly what: string,
  ) {}

  /** Queues bytes. */
  async push(b: Buffer): Promise<void> {
    this.plan.push(b);
    if (this.plan.bytes >= BATCH_TOKENS) await this.submit();
  }

  /** Queues the first `size` bytes of file `file`. */
  async file(file: string | Buffer, size: number): Promise<void> {
    if (size === 0) return;
    if (this.plan.file(file, size)) return;
    await this.submit();
    if (!this.plan.file(file, size)) throw new NarFormatError(`cannot archive '${file.toString()}': its path is too long`);
  }

  /** Hands what is queued to the writer, after the batch before it, and waits for that one. */
  async submit(): Promise<void> {
    await this.settle();
    const plan = this.plan;
    this.writing = { done: plan.write(this.fd), plan };
    this.writing.done.catch(() => {});
    this.plan = plan === this.plans[0] ? this.plans[1]! : this.plans[0]!;
    this.plan.reset();
  }

  /** Writes everything queued and waits until it is written. */
  async flush(): Promise<void> {
    await this.submit();
    await this.settle();
  }

  /** Never leaves the writer thread using the descriptor: call it however the stream ends. */
  async close(): Promise<void> {
    await this.writing?.done.catch(() => {});
  }

  /** Waits for the batch being written; its failure becomes drover's error. */
  private async settle(): Promise<void> {
    const w = this.writing;
    this.writing = undefined;
    if (w) await w.done.catch((e: GatherError) => Promise.reject(this.failure(w.plan, e)));
  }

  /** A failed batch as drover reports it: the tree changed (bad input, 2) or I/O failed (1). */
  private failure(plan: GatherPlan, e: GatherError): Error {
    if (e.item === undefined) return e;
    const file = plan.nameOf(e.item);
    if (e.code === 'ESHRANK') return shrank(file);
    if (e.code === 'ECHANGED') return new NarFormatError(`'${file}' changed while being archived: it is no longer a regular file`);
    // The output failed (EPIPE: the reader left): as a write error of Node's, which the CLI knows.
    if (e.syscall === 'write') return Object.assign(new Error(`${e.code}: ${e.message}, write`), { code: e.code, syscall: 'write' });
    return new DroverError(`cannot archive '${this.what}': ${e.code}: ${e.message}, ${e.syscall} '${file}'`, 1);
  }
}
