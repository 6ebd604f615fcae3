// Importing a Nix export stream: restore while reading, check, then one registration.
import path from 'node:path';
import { DroverError, ExportFormatError } from './errors.js';
import { ByteReader } from './byte-reader.js';
import { Hash } from './hash.js';
import { StreamSha256 } from './hash-stream.js';
import { NarRestorer, removeTree } from './nar.js';
import { parseStorePath } from './store-path.js';
import { readDerivation } from './derivation.js';
import { readEntryStart, readTrailer } from './export-format.js';
import type { ValidPathInfo } from './db.js';
import { COMMIT_CHUNK, heldLocks, syncFileSystem, type Store } from './store.js';
import { tryLockAsync, type FileLock } from './locks.js';

export interface ImportProgress {
  paths: number;
  bytes: number;
}

/**
 * Imports an export stream into `store` and returns its paths in stream order (those that
 * were valid already included, as Nix prints them). Each NAR is restored to a temporary
 * name while it is read and hashed, so memory stays flat in the size of the stream. Every
 * path must belong to this store and every reference must be the path itself, earlier in
 * the stream, or valid already. Nothing is registered until the stream has been read to
 * its end marker; then all paths are synced, renamed into place and registered in one
 * transaction (Store.commitPaths). Any error removes what was written: the store is unchanged.
 */
export async function importPaths(
  store: Store,
  source: AsyncIterable<Buffer | string>,
  opts: { what?: string; onProgress?: (p: ImportProgress) => void } = {},
): Promise<string[]> {
  // The scratch directory lives from the first entry to the commit: a `nix-store --gc` in
  // between would delete it (Store.withGcLock).
  return store.withGcLock(() => importLocked(store, source, opts));
}

async function importLocked(
  store: Store,
  source: AsyncIterable<Buffer | string>,
  opts: { what?: string; onProgress?: (p: ImportProgress) => void },
): Promise<string[]> {
  const what = opts.what ?? 'import stream';
  const db = store.db;
  store.cleanStaleTemps();
  const r = new ByteReader(source);
  const items: { tmp: string; info: ValidPathInfo }[] = [];
  /** Where each item's entry is in the stream, for errors found after the stream is read. */
  const places: string[] = [];
  // Each entry's NAR hash, computed on the pool while the stream goes on (hash-stream.ts;
  // the reader waits, should hashing fall behind).
  const digests: Promise<Buffer>[] = [];
  const seen = new Set<string>();
  const order: string[] = [];
  const dir = store.tempDir();
  const flusher = new BackgroundFlush(store.storeDir);
  const restorer = new NarRestorer({ canonical: true });
  // Each new path's lock, tried (never waited for) as soon as its trailer names it, so the
  // lock files are created while the rest of the stream is restored, not all at the end.
  const early = new Map<string, FileLock>();
  // Those being tried: their files are created on the thread pool while this thread reads on.
  const trying: Promise<void>[] = [];
  const tried = () => Promise.all(trying);
  const held = heldLocks();
  try {
    for (let n = 1; await readEntryStart(r, what); n++) {
      const start = r.offset;
      const hasher = new StreamSha256();
      r.taps.push(hasher);
      const tmp = path.join(dir, String(n));
      try {
        await restorer.restore(r, tmp, `${what}: archive of entry ${n}`, { fresh: true });
      } finally {
        r.taps.pop();
      }
      const narSize = r.offset - start;
      const trailerAt = r.offset;
      const t = await readTrailer(r, what);
      const place = `${what}: entry ${n} (trailer at byte ${trailerAt})`;
      const check = (p: string, role: string) => {
        try {
          parseStorePath(store.storeDir, p);
        } catch (e) {
          throw new ExportFormatError(`${place}: ${role}: ${(e as Error).message}`);
        }
      };
      check(t.path, 'path');
      if (t.deriver) check(t.deriver, `deriver of '${t.path}'`);
      for (const ref of t.references) {
        check(ref, `reference of '${t.path}'`);
        if (ref !== t.path && !seen.has(ref) && !db.isValid(ref)) {
          throw new ExportFormatError(`${place}: reference '${ref}' of '${t.path}' is neither valid nor earlier in the stream`);
        }
      }
      items.push({
        tmp,
        info: { path: t.path, narHash: PENDING_HASH, narSize, references: [...new Set(t.references)].sort(), deriver: t.deriver },
      });
      places.push(place);
      if (trying.length < MAX_EARLY_LOCKS && items.length <= COMMIT_CHUNK && !seen.has(t.path) && !held.has(t.path) && !db.isValid(t.path)) {
        const p = t.path;
        // Not taken here is no error: the commit takes it again, waiting, and reports what is wrong.
        trying.push(tryLockAsync(`${p}.lock`).then((l) => void (l && early.set(p, l)), () => {}));
      }
      seen.add(t.path);
      order.push(t.path);
      digests.push(hasher.digest());
      opts.onProgress?.({ paths: n, bytes: r.offset });
      flusher.wrote(narSize);
    }
    if (!(await r.atEnd())) throw new ExportFormatError(`${what}: trailing garbage after the end marker at byte ${r.offset}`);
    await restorer.finish(what, () => r.offset);
    const hashes = await Promise.all(digests);
    for (let i = 0; i < items.length; i++) items[i]!.info.narHash = new Hash('sha256', hashes[i]!);
    checkDerivations(store, items, places);
  } catch (e) {
    // The scratch copy goes first, as soon as no write into it is in flight: a reader that
    // hung up (ssh closing the connection) may end this process at any moment after.
    await restorer.settle();
    removeTree(dir);
    await flusher.settle();
    await tried();
    for (const l of early.values()) l.release({ unlink: true });
    throw e;
  }
  await flusher.settle();
  await tried();
  try {
    await store.commitPaths(items, { preLocked: early });
  } finally {
    // Those the commit did not take over (a store that refused the batch first, say).
    for (const l of early.values()) l.release({ unlink: true });
    removeTree(dir);
  }
  return order;
}

/**
 * Gives each new .drv of the stream its DerivationOutputs, read from its scratch copy and
 * checked against its contents (Store.derivationOutputsOf) before anything is committed, so
 * the commit need not read it: left to the commit, a stream of more than COMMIT_CHUNK new
 * paths, which commits in chunks, would have a .drv refused in a later chunk leave the earlier
 * ones registered. Input
 * derivations are read from the stream's scratch copies or, when valid, from the store.
 */
function checkDerivations(store: Store, items: readonly { tmp: string; info: ValidPathInfo }[], places: readonly string[]): void {
  const valid = store.db.validAmong(items.map((i) => i.info.path));
  // Each new path's scratch copy: its first entry's, as the commit keeps that one.
  const scratch = new Map<string, string>();
  for (const { tmp, info } of items) if (!valid.has(info.path) && !scratch.has(info.path)) scratch.set(info.path, tmp);
  const read = (p: string) => readDerivation(store, p, scratch.get(p));
  items.forEach(({ tmp, info }, i) => {
    if (!info.path.endsWith('.drv') || scratch.get(info.path) !== tmp) return;
    try {
      info.derivationOutputs = store.derivationOutputsOf(info.path, { file: tmp, read });
    } catch (e) {
      if (e instanceof DroverError && e.exitCode === 2) throw new ExportFormatError(`${places[i]}: ${e.message}`, { cause: e });
      throw e;
    }
  });
}

/** Stands for an entry's NAR hash until its digest is in (before anything is committed). */
const PENDING_HASH = new Hash('sha256', Buffer.alloc(32));

/**
 * Locks taken while the stream is read, at most: each holds a descriptor until the commit
 * (which tries the rest of the first chunk's locks then, still without waiting).
 */
const MAX_EARLY_LOCKS = 1024;

/** Bytes written between two background flushes. */
const FLUSH_EVERY = 64 << 20;

/**
 * Starts a syncfs(2) of the store's file system in the background after every
 * FLUSH_EVERY bytes restored, so the disk writes back while the stream is still being read;
 * the commit's own syncfs then finds little left to do. Only an optimisation: the commit
 * syncs regardless, which is what makes the contents durable before registration.
 */
class BackgroundFlush {
  private pending = 0;
  private running: Promise<void> | undefined;
  constructor(private readonly dir: string) {}

  wrote(bytes: number): void {
    this.pending += bytes;
    if (this.pending < FLUSH_EVERY || this.running || process.env.DROVER_NO_SYNC === '1') return;
    this.pending = 0;
    // A failure here is the commit's to report: its own flush fails the same way.
    this.running = syncFileSystem(this.dir)
      .catch(() => {})
      .then(() => {
        this.running = undefined;
      });
  }

  /** Waits for a flush still running, so none outlives the import. */
  async settle(): Promise<void> {
    await this.running;
  }
}
