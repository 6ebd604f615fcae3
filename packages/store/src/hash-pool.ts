// NAR-hashing of many store paths at once, spread over worker threads (one per core).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { hashPath } from './nar.js';
import { Hash } from './hash.js';

export interface PathHashResult {
  narHash: Hash;
  narSize: number;
}

/** A path that could not be read or canonicalised; the message names it. */
export class PathReadError extends Error {}

/** Below this many paths the threads' start-up costs more than it saves. */
const MIN_PARALLEL = 256;
/** Paths per message: large enough to amortise messaging, small enough to balance load. */
const CHUNK = 128;

/**
 * Canonicalises the metadata of a tree as Nix's canonicalisePathMetaData does for
 * registration: mode 0444/0555 (executable bit kept), mtime 1. Ownership is left alone
 * (drover's store belongs to the user running it).
 */
export function canonicalisePath(p: string): void {
  const st = fs.lstatSync(p);
  if (st.isSymbolicLink()) {
    if (st.mtimeMs !== 1000) fs.lutimesSync(p, 1, 1);
    return;
  }
  if (st.isDirectory()) {
    for (const name of fs.readdirSync(p)) canonicalisePath(path.join(p, name));
  }
  const want = st.isDirectory() || st.mode & 0o100 ? 0o555 : 0o444;
  if ((st.mode & 0o7777) !== want) fs.chmodSync(p, want);
  if (st.mtimeMs !== 1000) fs.utimesSync(p, 1, 1);
}

/** One path's work in the current thread: returns [hex, size] or an error message. */
function work(p: string, opts: { hash: boolean; canonicalise: boolean }): [string, number] | string {
  try {
    if (opts.canonicalise) canonicalisePath(p);
    else if (!opts.hash) fs.lstatSync(p);
    if (!opts.hash) return ['', 0];
    const { hash, size } = hashPath(p);
    return [hash.hex, size];
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? `'${p}' does not exist on disk` : `cannot read '${p}': ${(e as Error).message}`;
  }
}

/**
 * Canonicalises and/or NAR-hashes every path (sha256), in parallel when there are many.
 * Results are in the order of `paths`; an unreadable or missing path throws PathReadError.
 */
export async function hashPaths(
  paths: readonly string[],
  opts: { hash?: boolean; canonicalise?: boolean; threads?: number } = {},
): Promise<(PathHashResult | undefined)[]> {
  const o = { hash: opts.hash ?? true, canonicalise: opts.canonicalise ?? false };
  const threads = opts.threads ?? Math.min(os.availableParallelism(), 8);
  const raw: ([string, number] | string)[] = new Array(paths.length);
  if (threads <= 1 || paths.length < MIN_PARALLEL) {
    for (let i = 0; i < paths.length; i++) raw[i] = work(paths[i]!, o);
  } else {
    await runPool(paths, o, threads, raw);
  }
  return raw.map((r) => {
    if (typeof r === 'string') throw new PathReadError(r);
    return o.hash ? { narHash: new Hash('sha256', Buffer.from(r[0], 'hex')), narSize: r[1] } : undefined;
  });
}

async function runPool(paths: readonly string[], o: { hash: boolean; canonicalise: boolean }, threads: number, raw: ([string, number] | string)[]): Promise<void> {
  let next = 0;
  const workers: Worker[] = [];
  try {
    await Promise.all(
      Array.from({ length: threads }, () => {
        const w = new Worker(new URL(import.meta.url), { workerData: { droverHashPool: true, ...o } });
        workers.push(w);
        return new Promise<void>((resolve, reject) => {
          let start = 0;
          const feed = () => {
            if (next >= paths.length) {
              resolve();
              return;
            }
            start = next;
            next = Math.min(next + CHUNK, paths.length);
            w.postMessage(paths.slice(start, next));
          };
          w.on('message', (results: ([string, number] | string)[]) => {
            for (let i = 0; i < results.length; i++) raw[start + i] = results[i]!;
            feed();
          });
          w.on('error', reject);
          w.on('exit', (code) => {
            if (code !== 0) reject(new Error(`hashing thread exited with ${code}`));
          });
          feed();
        });
      }),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

if (!isMainThread && (workerData as { droverHashPool?: boolean } | null)?.droverHashPool) {
  const o = workerData as { hash: boolean; canonicalise: boolean };
  parentPort!.on('message', (batch: string[]) => {
    parentPort!.postMessage(batch.map((p) => work(p, o)));
  });
}
