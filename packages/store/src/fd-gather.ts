// The native gather writer (native/fd-gather.c): bytes and whole files to a descriptor, the
// files copied by the kernel (sendfile), on a libuv thread while JavaScript goes on.
import { loadNative, type NativeError } from './native.js';

/** A failed gather: which item (file) and which system call, with Node's error code. */
export interface GatherError extends NativeError {
  /** Node's code (EACCES…), or ESHRANK (the file ended before its size) or ECHANGED (no longer a regular file). */
  code: string;
}

const ITEM = 4;

/**
 * One batch of output, built by the caller: `tokens` are written in order, and after each
 * item's share of them, the item's file (by path, not following a symlink) follows with
 * exactly its size in bytes. Paths are bytes, so names need not be UTF-8.
 */
export class GatherPlan {
  private tokens: Buffer[] = [];
  private tokenBytes = 0;
  private pendingTokens = 0;
  private readonly plan: Float64Array;
  private items = 0;
  private readonly paths: Buffer;
  private pathBytes = 0;

  constructor(readonly maxFiles: number, pathArena: number) {
    // One more item than files: the bytes after the last file.
    this.plan = new Float64Array(ITEM * (maxFiles + 1));
    this.paths = Buffer.allocUnsafe(pathArena);
  }

  /** Empties the plan for the next batch (once the last write of it has settled). */
  reset(): void {
    this.tokens = [];
    this.tokenBytes = this.pendingTokens = this.items = this.pathBytes = 0;
  }

  /** Bytes queued (not counting the files). */
  get bytes(): number {
    return this.tokenBytes;
  }

  /** Queues bytes; the caller must not change them until the batch is written. */
  push(b: Buffer): void {
    this.tokens.push(b);
    this.tokenBytes += b.length;
    this.pendingTokens += b.length;
  }

  /** Queues the first `size` bytes of file `p`; false when the batch has no room (write it first). */
  file(p: string | Buffer, size: number): boolean {
    if (this.items === this.maxFiles) return false;
    const at = this.pathBytes;
    let n: number;
    if (typeof p === 'string') {
      // At most 3 bytes per UTF-16 unit: room is checked without measuring first.
      if (at + 3 * p.length > this.paths.length) return false;
      n = this.paths.write(p, at);
    } else {
      if (at + p.length > this.paths.length) return false;
      n = p.copy(this.paths, at);
    }
    this.add(at, n, size);
    this.pathBytes += n;
    return true;
  }

  private add(pathAt: number, pathLen: number, size: number): void {
    const k = ITEM * this.items++;
    this.plan[k] = this.pendingTokens;
    this.plan[k + 1] = pathAt;
    this.plan[k + 2] = pathLen;
    this.plan[k + 3] = size;
    this.pendingTokens = 0;
  }

  /** The path of item `i`'s file, for messages. */
  nameOf(i: number): string {
    const at = this.plan[ITEM * i + 1]!;
    return this.paths.subarray(at, at + this.plan[ITEM * i + 2]!).toString();
  }

  /**
   * Writes the batch to `fd` on a libuv thread; the promise settles when all is written. The
   * plan must not be touched meanwhile, and no other write to `fd` may run at the same time.
   */
  write(fd: number): Promise<void> {
    // Bytes after the last file go out as an item without a file.
    if (this.pendingTokens > 0) this.add(0, 0, 0);
    return loadNative().gather(fd, Buffer.concat(this.tokens, this.tokenBytes), this.plan.subarray(0, ITEM * this.items), this.paths.subarray(0, this.pathBytes));
  }
}
