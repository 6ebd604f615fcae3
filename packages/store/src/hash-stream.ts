// SHA-256 of a stream hashed off the main thread, in order: what import hashes its NARs with.
import { loadNative, type Native, type NativeHashStream } from './native.js';

/** Bytes handed to stream hashes and not hashed yet. */
export function hashBacklog(): number {
  return loadNative().hashStreamBacklog();
}

/** Bytes handed over and not hashed yet, over all streams, beyond which readers wait. */
const MAX_BACKLOG = 64 << 20;

/**
 * Takes the same `update(buffer)` calls as a node:crypto Hash and hashes on libuv's pool, so
 * the caller goes on parsing while the bytes are hashed. The buffers are kept until hashed:
 * they must not change after `update` (chunks of fdChunks and of Node's streams do not).
 * Pieces that lie next to each other in memory (a parser's reads from one chunk) are handed
 * over as one, so a NAR costs a few native calls per chunk, not one per token.
 */
export class StreamSha256 {
  private readonly native: Native = loadNative();
  private readonly handle: NativeHashStream = this.native.hashStreamNew();
  private held: Buffer | undefined;
  private heldEnd = 0;
  private heldStart = 0;

  update(b: Buffer): void {
    if (b.length === 0) return;
    if (this.held && b.buffer === this.held.buffer && b.byteOffset === this.heldEnd) {
      this.heldEnd += b.length;
      return;
    }
    this.flush();
    this.held = b;
    this.heldStart = b.byteOffset;
    this.heldEnd = b.byteOffset + b.length;
  }

  /**
   * When the bytes handed over and not hashed yet, over all streams, exceed `limit`: a promise
   * that settles once they are down to half of it. A reader awaits it before reading on, so
   * memory stays bounded should hashing fall behind (a slow CPU under a fast disk), whether
   * the backlog is one big NAR's or that of many small ones before it.
   */
  backlogged(limit = MAX_BACKLOG): Promise<void> | undefined {
    if (this.native.hashStreamBacklog() <= limit) return undefined;
    this.flush();
    return this.native.hashStreamDrain(limit / 2);
  }

  /** The digest of everything given, once the pool has hashed it. Call once. */
  digest(): Promise<Buffer> {
    this.flush();
    return this.native.hashStreamDigest(this.handle);
  }

  private flush(): void {
    const h = this.held;
    if (!h) return;
    this.held = undefined;
    const whole = h.byteOffset === this.heldStart && h.length === this.heldEnd - this.heldStart;
    this.native.hashStreamUpdate(this.handle, whole ? h : Buffer.from(h.buffer, this.heldStart, this.heldEnd - this.heldStart));
  }
}
