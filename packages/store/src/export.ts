// Exporting store paths as one Nix export stream, NARs streamed straight from disk.
import { createHash } from 'node:crypto';
import { StoreDbError } from './errors.js';
import { Hash } from './hash.js';
import { narChunks } from './nar.js';
import { ENTRY_START, STREAM_END, encodeTrailer } from './export-format.js';
import { topoSortGraph } from './topo-sort.js';
import { requireValid } from './query.js';
import type { Store } from './store.js';
import type { ValidPathInfo } from './db.js';
import { HashPool, type PathHashResult } from './hash-pool.js';
import { GatherStream } from './gather-stream.js';
import { writeNar } from './nar-dump.js';

/** Where the stream goes: a write that may ask the caller to wait (back-pressure). */
export type ByteSink = (chunk: Buffer) => void | Promise<void>;

export interface ExportProgress {
  paths: number;
  totalPaths: number;
  bytes: number;
}

/**
 * Writes `paths` (which must be valid) as `nix-store --export` does: references first in
 * Nix's own topological order, so the bytes equal Nix's. A path whose contents no longer
 * match the DB's hash is refused, as Nix refuses it, so corruption does not spread.
 * With `verify: false` the contents are not hashed here: only for a receiver that checks
 * every NAR against the hash this store's DB gives it before it registers anything (the
 * hook's remote session does), so the check happens once, where it must happen anyway.
 */
export async function exportPaths(
  store: Store,
  paths: readonly string[],
  write: ByteSink,
  opts: { onProgress?: (p: ExportProgress) => void; verify?: boolean } = {},
): Promise<void> {
  const db = store.db;
  const order = exportOrder(store, paths);
  const verify = opts.verify ?? true;
  let bytes = 0;
  let done = 0;
  for (const p of order) {
    const info = db.queryPathInfo(p);
    if (!info) throw new StoreDbError(`path '${p}' stopped being valid during the export`);
    await write(ENTRY_START);
    const h = verify ? createHash('sha256') : undefined;
    // Synchronous reads: measured faster here than a thread-pool read-ahead, whose first read of
    // each path waits on the thread pool (a thousand small paths, a thousand waits).
    for (const chunk of narChunks(p)) {
      h?.update(chunk);
      bytes += chunk.length;
      const w = write(chunk);
      if (w) await w;
    }
    if (h) checkUnchanged(info, new Hash('sha256', h.digest()));
    await write(encodeTrailer({ path: p, references: info.references, deriver: info.deriver }));
    opts.onProgress?.({ paths: ++done, totalPaths: order.length, bytes });
  }
  await write(STREAM_END);
}

/** Paths whose hashes are computed together, and how many such windows run ahead of the writing. */
const HASH_WINDOW = 32;
const WINDOWS_AHEAD = 3;

/**
 * exportPaths, written to the descriptor `fd` (the CLI's stdout): a native thread writes the
 * NARs, their files copied by the kernel (gather-stream.ts), while the pool's threads hash the
 * paths ahead of the writing and this thread walks the next path. A path's trailer is written
 * only once its hash matched: a path whose contents changed ends the stream before it, as
 * Nix's export does. Unlike Nix (and exportPaths), the hash is of a read made just before
 * the writer's, not of the bytes sent: a file rewritten in the milliseconds between the two
 * would go out unnoticed (store files are read-only; that takes a writer racing the export).
 * The same bytes as exportPaths.
 */
export async function exportPathsToFd(store: Store, paths: readonly string[], fd: number, opts: { onProgress?: (p: ExportProgress) => void } = {}): Promise<void> {
  const db = store.db;
  const order = exportOrder(store, paths);
  // Threads from the first window on: hashing in this thread would hold up the walk.
  const pool = new HashPool(undefined, { minPaths: 0 });
  const windows = new Map<number, Promise<(PathHashResult | undefined)[]>>();
  const hashOf = async (k: number): Promise<PathHashResult> => {
    const w = Math.floor(k / HASH_WINDOW);
    for (let j = w; j <= w + WINDOWS_AHEAD && j * HASH_WINDOW < order.length; j++) {
      if (windows.has(j)) continue;
      const run = pool.run(order.slice(j * HASH_WINDOW, (j + 1) * HASH_WINDOW));
      run.catch(() => {});
      windows.set(j, run);
    }
    windows.delete(w - 1);
    return (await windows.get(w)!)[k - w * HASH_WINDOW]!;
  };
  // Path info read a window ahead, in two queries per window.
  let infos = new Map<string, ValidPathInfo>();
  const out = new GatherStream(fd, 'the export');
  let bytes = 0;
  try {
    for (let k = 0; k < order.length; k++) {
      const p = order[k]!;
      if (k % HASH_WINDOW === 0) infos = db.pathInfos(order.slice(k, k + HASH_WINDOW));
      const info = infos.get(p);
      if (!info) throw new StoreDbError(`path '${p}' stopped being valid during the export`);
      const hashed = hashOf(k);
      hashed.catch(() => {});
      await out.push(ENTRY_START);
      bytes += await writeNar(out, p);
      // On a refusal, what went before is written, as Nix's export leaves it: whole paths,
      // then this NAR without its trailer.
      let actual: Hash;
      try {
        actual = (await hashed).narHash;
      } catch (e) {
        await out.flush();
        throw e;
      }
      if (!actual.equals(info.narHash)) {
        await out.flush();
        checkUnchanged(info, actual);
      }
      await out.push(encodeTrailer({ path: p, references: info.references, deriver: info.deriver }));
      opts.onProgress?.({ paths: k + 1, totalPaths: order.length, bytes });
    }
    await out.push(STREAM_END);
    await out.flush();
  } finally {
    // Stopped early (an error, a reader gone): the threads stop too, not after hashing what
    // was ahead; the native jobs (small files) are waited for.
    await out.close();
    await pool.close();
    await Promise.all([...windows.values()].map((w) => w.catch(() => {})));
  }
}

/** The closure's export order: references first, in Nix's own topological order. */
function exportOrder(store: Store, paths: readonly string[]): string[] {
  for (const p of paths) store.checkInStore(p);
  const graph = store.db.subgraph(paths);
  requireValid(paths, graph);
  return topoSortGraph(graph);
}

/** Refuses a path whose contents no longer match the DB's hash, in Nix's words. */
function checkUnchanged(info: ValidPathInfo, actual: Hash): void {
  if (!actual.equals(info.narHash)) {
    throw new StoreDbError(`hash of path '${info.path}' has changed from '${info.narHash.toString('base32', true)}' to '${actual.toString('base32', true)}'!`);
  }
}
