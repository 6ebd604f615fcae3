// Checking a store against its validity DB (`nix-store --verify [--check-contents]`), read-only.
import fs from 'node:fs';
import { HashPool, hashPaths } from './hash-pool.js';
import { parseStorePath } from './store-path.js';
import type { Store } from './store.js';

export type ProblemKind =
  | 'db-corrupt'
  | 'bad-path'
  | 'missing'
  | 'dangling-reference'
  | 'dangling-output'
  | 'unreadable'
  | 'hash-mismatch'
  | 'size-mismatch';

/** One thing wrong with the store; printed as `KIND PATH DETAIL`. */
export interface VerifyProblem {
  kind: ProblemKind;
  path: string;
  detail: string;
}

/** Paths hashed per step of `--check-contents`. */
const CONTENT_CHUNK = 1024;

/**
 * Reports, without changing anything: a DB that fails SQLite's check, valid paths that are
 * not store paths of this store or are missing on disk, references and DerivationOutputs
 * rows that point at no valid path (a broken closure), and with `checkContents` paths
 * whose NAR hash or size differ from the DB's. Files that are not valid paths (drover's
 * `.drover-tmp-*` leftovers, lock files, invalid paths) are not problems: nothing refers to them.
 */
export async function verifyStore(store: Store, opts: { checkContents?: boolean; onProgress?: (checked: number, total: number) => void } = {}): Promise<VerifyProblem[]> {
  const problems: VerifyProblem[] = [];
  try {
    return await verifyInto(store, problems, opts);
  } catch (e) {
    // A damaged DB fails the queries after quick_check: what was found so far is the report,
    // ending with the reason the check stopped.
    if (!String((e as { code?: unknown }).code).startsWith('SQLITE_CORRUPT') && !String((e as { code?: unknown }).code).startsWith('SQLITE_NOTADB')) throw e;
    problems.push({ kind: 'db-corrupt', path: store.db.stateDir, detail: `the check stopped: ${(e as Error).message}` });
    return problems;
  }
}

async function verifyInto(store: Store, problems: VerifyProblem[], opts: { checkContents?: boolean; onProgress?: (checked: number, total: number) => void }): Promise<VerifyProblem[]> {
  const db = store.db;
  for (const row of db.db.pragma('quick_check') as { quick_check: string }[]) {
    if (row.quick_check === 'ok') continue;
    // One row may hold many findings, a line each: each is a problem line of its own.
    // ('*** in database main ***' heads the findings; it is none itself.)
    for (const line of row.quick_check.split('\n')) {
      if (line && !/^\*\*\* in database /.test(line)) problems.push({ kind: 'db-corrupt', path: db.stateDir, detail: line });
    }
  }
  const dangling = db.db
    .prepare(
      `select a.path as referrer, r.reference as id from Refs r left join ValidPaths a on a.id = r.referrer
        where r.reference not in (select id from ValidPaths) or a.id is null`,
    )
    .all() as { referrer: string | null; id: number }[];
  for (const d of dangling) problems.push({ kind: 'dangling-reference', path: d.referrer ?? '<no referrer>', detail: `reference to row ${d.id}, which is no valid path` });
  const orphanOutputs = db.db.prepare('select drv, id, path from DerivationOutputs where drv not in (select id from ValidPaths)').all() as { drv: number; id: string; path: string }[];
  for (const o of orphanOutputs) problems.push({ kind: 'dangling-output', path: o.path, detail: `output '${o.id}' of row ${o.drv}, which is no valid path` });

  const present: string[] = [];
  const infos = new Map<string, { narHash: string; narSize: number }>();
  for (const info of db.allPathInfos()) {
    try {
      parseStorePath(store.storeDir, info.path);
    } catch (e) {
      problems.push({ kind: 'bad-path', path: info.path, detail: (e as Error).message });
      continue;
    }
    try {
      fs.lstatSync(info.path);
    } catch {
      problems.push({ kind: 'missing', path: info.path, detail: 'valid in the DB but absent on disk' });
      continue;
    }
    present.push(info.path);
    if (opts.checkContents) infos.set(info.path, { narHash: info.narHash.toString('base32', true), narSize: info.narSize });
  }
  if (opts.checkContents) {
    // A chunk with an unreadable path is hashed again path by path, so that path is a
    // problem of its own rather than an abort of the whole check.
    // One pool for every chunk; chunks small enough that progress moves on a big store.
    const results: (Awaited<ReturnType<typeof hashPaths>>[number] | Error)[][] = [];
    // Chunks are below the pool's own threshold for threads: a big store asks for them.
    const pool = new HashPool(undefined, present.length > CONTENT_CHUNK ? { minPaths: 0 } : {});
    let checked = 0;
    try {
      for (const chunk of chunks(present, CONTENT_CHUNK)) {
        try {
          results.push(await pool.run(chunk));
        } catch {
          const one: (Awaited<ReturnType<typeof hashPaths>>[number] | Error)[] = [];
          for (const p of chunk) one.push(await hashPaths([p], { threads: 1 }).then((r) => r[0], (e: Error) => e));
          results.push(one);
        }
        opts.onProgress?.((checked += chunk.length), present.length);
      }
    } finally {
      await pool.close();
    }
    const flat = results.flat();
    present.forEach((p, i) => {
      const r = flat[i];
      const want = infos.get(p)!;
      if (r instanceof Error || r === undefined) {
        problems.push({ kind: 'unreadable', path: p, detail: r instanceof Error ? r.message : 'no result' });
        return;
      }
      const got = r.narHash.toString('base32', true);
      if (got !== want.narHash) problems.push({ kind: 'hash-mismatch', path: p, detail: `expected ${want.narHash}, got ${got}` });
      else if (want.narSize !== 0 && r.narSize !== want.narSize) problems.push({ kind: 'size-mismatch', path: p, detail: `expected ${want.narSize}, got ${r.narSize}` });
    });
  }
  return problems;
}

function chunks<T>(a: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < a.length; i += n) out.push(a.slice(i, i + n));
  return out;
}
