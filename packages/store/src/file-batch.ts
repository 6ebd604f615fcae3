// A batch of small files for the native writer (native/file-batch.c): each one created,
// written, given its mode and date, and closed on a libuv thread, the batch in one trip.
import { loadNative, type NativeError } from './native.js';

const ITEM = 6;

export class FileBatch {
  private readonly plan: Float64Array;
  private items = 0;
  private readonly paths: Buffer[] = [];
  private pathBytes = 0;
  private readonly chunks: Buffer[] = [];
  /** Bytes of contents queued. */
  bytes = 0;
  /**
   * Memory the queued chunks keep alive: each distinct buffer behind them, whole. A small
   * file's chunk is a view into a reader's slab (1 MiB from a file, 64 KiB from a socket), and
   * it is the slab that cannot be freed until the batch is written.
   */
  held = 0;
  private readonly behind = new Set<ArrayBufferLike>();

  constructor(readonly maxFiles: number) {
    this.plan = new Float64Array(ITEM * maxFiles);
  }

  get full(): boolean {
    return this.items === this.maxFiles;
  }

  /**
   * Queues a file to create (it must not exist; a symlink there is not followed) with
   * `mode`, write `chunks` to, then chmod to `finalMode` (negative: leave it). The chunks
   * must not change until the batch is written.
   */
  add(path: Buffer, mode: number, finalMode: number, chunks: readonly Buffer[]): void {
    if (this.full) throw new Error('FileBatch.add: the batch is full');
    const k = ITEM * this.items++;
    this.plan[k] = this.pathBytes;
    this.plan[k + 1] = path.length;
    this.plan[k + 2] = mode;
    this.plan[k + 3] = finalMode;
    this.plan[k + 4] = this.chunks.length;
    this.plan[k + 5] = chunks.length;
    this.paths.push(path);
    this.pathBytes += path.length;
    for (const c of chunks) {
      this.chunks.push(c);
      this.bytes += c.length;
      if (!this.behind.has(c.buffer)) {
        this.behind.add(c.buffer);
        this.held += c.buffer.byteLength;
      }
    }
  }

  /**
   * Writes every file on a libuv thread, in order, stopping at the first failure: the error
   * has Node's code and syscall, and the failed file's `path`. With `canonical` each file is
   * also dated 1, as store paths are.
   */
  async write(canonical: boolean): Promise<void> {
    try {
      await loadNative().writeFiles(Buffer.concat(this.paths, this.pathBytes), this.plan.subarray(0, ITEM * this.items), this.chunks, canonical);
    } catch (e) {
      const err = e as NativeError & { path?: string; errno?: number };
      if (typeof err.item === 'number' && this.paths[err.item]) err.path = this.paths[err.item]!.toString();
      err.message = `${err.code}: ${err.message}, ${err.syscall} '${err.path}'`;
      throw err;
    }
  }
}
