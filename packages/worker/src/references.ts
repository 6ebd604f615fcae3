// Streaming reference scan: which of a set of store paths' hash parts occur in a byte stream.
//
// As Nix's scanForReferences: every window of 32 Nix-base32 characters is looked up, so a
// hash is found wherever it stands, inside a longer run of base32 text included. Chunks
// are scanned as they come; the last 31 bytes of one chunk are carried into the next, so a
// hash split across a chunk boundary is still found, and no file is held in memory whole.
import { HASH_PART_LENGTH } from '@drover/store';

const BASE32 = '0123456789abcdfghijklmnpqrsvwxyz';
const IS_BASE32 = new Uint8Array(256);
for (const c of BASE32) IS_BASE32[c.charCodeAt(0)] = 1;

export class ReferenceScanner {
  /** hash part → store path, for the candidates not found yet. */
  private readonly wanted = new Map<string, string>();
  private readonly hits = new Set<string>();
  private carry: Buffer = Buffer.alloc(0);

  constructor(candidates: Iterable<string>) {
    for (const p of candidates) {
      const base = p.slice(p.lastIndexOf('/') + 1);
      this.wanted.set(base.slice(0, HASH_PART_LENGTH), p);
    }
  }

  update(chunk: Buffer): void {
    if (this.wanted.size === 0) return;
    const buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    const n = buf.length;
    const L = HASH_PART_LENGTH;
    let i = 0;
    while (i + L <= n) {
      // Check the window back to front: a bad byte lets us skip past it at once.
      let j = L - 1;
      while (j >= 0 && IS_BASE32[buf[i + j]!]) j--;
      if (j >= 0) {
        i += j + 1;
        continue;
      }
      const key = buf.toString('latin1', i, i + L);
      const p = this.wanted.get(key);
      if (p !== undefined) {
        this.hits.add(p);
        this.wanted.delete(key);
        if (this.wanted.size === 0) break;
      }
      i++;
    }
    // Keep the tail that could still start a hash (at most L-1 bytes, copied so the
    // caller's chunk can be reused).
    const keep = Math.min(L - 1, n);
    this.carry = Buffer.from(buf.subarray(n - keep));
  }

  /** The candidates found so far, sorted. */
  found(): string[] {
    return [...this.hits].sort();
  }
}
