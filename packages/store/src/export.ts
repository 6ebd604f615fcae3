// Exporting store paths as one Nix export stream, NARs streamed straight from disk.
import { createHash } from 'node:crypto';
import { StoreDbError } from './errors.js';
import { Hash } from './hash.js';
import { narChunks } from './nar.js';
import { ENTRY_START, STREAM_END, encodeTrailer } from './export-format.js';
import { topoSortGraph } from './topo-sort.js';
import { requireValid } from './query.js';
import type { Store } from './store.js';

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
  for (const p of paths) store.checkInStore(p);
  const graph = db.subgraph(paths);
  requireValid(paths, graph);
  const order = topoSortGraph(graph);
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
    if (h) {
      const actual = new Hash('sha256', h.digest());
      if (!actual.equals(info.narHash)) {
        throw new StoreDbError(`hash of path '${p}' has changed from '${info.narHash.toString('base32', true)}' to '${actual.toString('base32', true)}'!`);
      }
    }
    await write(encodeTrailer({ path: p, references: info.references, deriver: info.deriver }));
    opts.onProgress?.({ paths: ++done, totalPaths: order.length, bytes });
  }
  await write(STREAM_END);
}
