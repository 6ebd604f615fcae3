// Registering paths that are already on disk (`nix-store --register-validity` / `--load-db`).
import fs from 'node:fs';
import { hashPaths, PathReadError } from './hash-pool.js';
import { RegistrationError, type ValidPathInfo } from './db.js';
import { parseStorePath } from './store-path.js';
import { topoSortPaths } from './topo-sort.js';
import type { Registration } from './registration.js';
import type { Store } from './store.js';

export interface RegisterValidityOptions {
  /** The entries carry their NAR hash and size; without it drover hashes each path. */
  hashGiven: boolean;
  /** Re-register paths that are valid already (updating hash and size), as Nix's --reregister. */
  reregister: boolean;
  /** Make contents read-only with mtime 1 first, as `--register-validity` does (not `--load-db`). */
  canonicalise: boolean;
  what?: string;
}

/**
 * Registers `entries` in one transaction and returns the paths registered. Paths valid
 * already are skipped unless `reregister`; a later entry for the same path replaces an
 * earlier one. Every path, deriver and reference must be a store path of this store, every
 * path must exist, and every reference must be valid or in the batch; otherwise nothing
 * is registered and the error (exit 2) names the entry's line.
 */
export async function registerValidity(store: Store, entries: readonly Registration[], opts: RegisterValidityOptions): Promise<string[]> {
  const what = opts.what ?? 'registration input';
  const db = store.db;
  const fail = (r: Registration, msg: string): never => {
    throw new RegistrationError(`${what}: line ${r.line}: ${msg}`);
  };
  const check = (r: Registration, p: string, role: string) => {
    try {
      parseStorePath(store.storeDir, p);
    } catch (e) {
      fail(r, `${role}: ${(e as Error).message}`);
    }
  };
  const byPath = new Map<string, Registration>();
  for (const r of entries) {
    check(r, r.path, 'path');
    if (r.deriver) check(r, r.deriver, `deriver of '${r.path}'`);
    for (const ref of r.references) check(r, ref, `reference of '${r.path}'`);
    byPath.set(r.path, r);
  }
  const batch = [...byPath.values()].filter((r) => opts.reregister || !db.isValid(r.path));
  const inBatch = new Set(batch.map((r) => r.path));
  // Refuse dangling references before spending time on hashing.
  for (const r of batch) {
    for (const ref of r.references) {
      if (!inBatch.has(ref) && !db.isValid(ref)) fail(r, `reference '${ref}' of '${r.path}' is not valid and not in the input`);
    }
  }
  const paths = batch.map((r) => r.path);
  // Cycles too are refused before anything is touched (the DB would refuse them later).
  const refsOf = new Map(batch.map((r) => [r.path, r.references]));
  topoSortPaths(paths, (p) => refsOf.get(p));
  // All must exist before any is touched: canonicalising is a change to the store.
  for (const r of batch) {
    try {
      fs.lstatSync(r.path);
    } catch {
      fail(r, `cannot register '${r.path}': it does not exist on disk`);
    }
  }
  let hashed: Awaited<ReturnType<typeof hashPaths>>;
  try {
    hashed = await hashPaths(paths, { hash: !opts.hashGiven, canonicalise: opts.canonicalise });
  } catch (e) {
    if (e instanceof PathReadError) throw new RegistrationError(`${what}: cannot register: ${e.message}`);
    throw e;
  }
  const infos: ValidPathInfo[] = batch.map((r, i) => ({
    path: r.path,
    narHash: opts.hashGiven ? r.narHash! : hashed[i]!.narHash,
    narSize: opts.hashGiven ? r.narSize! : hashed[i]!.narSize,
    references: [...new Set(r.references)],
    deriver: r.deriver,
  }));
  db.registerValidPaths(infos, { derivationOutputsOf: (drv) => store.derivationOutputsOf(drv) });
  return paths;
}
