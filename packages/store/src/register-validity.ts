// Registering paths that are already on disk (`nix-store --register-validity` / `--load-db`).
import { HashPool, PathReadError, type PathHashResult } from './hash-pool.js';
import { RegistrationError, type ValidPathInfo } from './db.js';
import { DroverError } from './errors.js';
import { isWellFormedStorePath, parseStorePath } from './store-path.js';
import { ReferenceCycleError, checkAcyclicIndexed, type IndexedReferences } from './topo-sort.js';
import { PathOrder } from './path-order.js';
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
  // The paths are on disk and not valid until the commit: garbage to a `nix-store --gc`
  // running meanwhile, which would delete them after they were checked (Store.withGcLock).
  return store.withGcLock(() => registerLocked(store, entries, opts));
}

async function registerLocked(store: Store, entries: readonly Registration[], opts: RegisterValidityOptions): Promise<string[]> {
  const what = opts.what ?? 'registration input';
  const db = store.db;
  const fail = (r: Registration, msg: string): never => {
    throw new RegistrationError(`${what}: line ${r.line}: ${msg}`);
  };
  const check = (r: Registration, p: string, role: string) => {
    if (isWellFormedStorePath(store.storeDir, p)) return;
    try {
      parseStorePath(store.storeDir, p);
    } catch (e) {
      fail(r, `${role}: ${(e as Error).message}`);
    }
  };
  // Each path's last entry (a later one replaces an earlier one).
  const last = new Map<string, number>();
  for (let i = 0; i < entries.length; i++) {
    const r = entries[i]!;
    check(r, r.path, 'path');
    if (r.deriver) check(r, r.deriver, `deriver of '${r.path}'`);
    last.set(r.path, i);
  }
  // Every reference as the index of the entry it names, or -1 for one outside the input,
  // learnt while checking them: the cycle check and the Refs rows then look up nothing.
  // References that are paths of the input were checked as such; the others must be valid.
  const refStart = new Int32Array(entries.length + 1);
  for (let i = 0; i < entries.length; i++) refStart[i + 1] = refStart[i]! + entries[i]!.references.length;
  const refEntry = new Int32Array(refStart[entries.length]!);
  const outside = new Set<string>();
  for (let i = 0, k = 0; i < entries.length; i++) {
    const r = entries[i]!;
    for (const ref of r.references) {
      const t = last.get(ref);
      refEntry[k++] = t ?? -1;
      if (t !== undefined || outside.has(ref)) continue;
      check(r, ref, `reference of '${r.path}'`);
      outside.add(ref);
    }
  }
  const validBefore = opts.reregister ? new Set<string>() : db.validAmong([...last.keys()]);
  // The batch: each path's last entry, unless the path is valid already.
  const inBatch = new Int32Array(entries.length).fill(-1);
  const batch: Registration[] = [];
  const repeated = last.size < entries.length;
  for (let i = 0; i < entries.length; i++) {
    const p = entries[i]!.path;
    if ((repeated && last.get(p) !== i) || (validBefore.size > 0 && validBefore.has(p))) continue;
    inBatch[i] = batch.length;
    batch.push(entries[i]!);
  }
  const paths = batch.map((r) => r.path);
  const batchRefs = referencesInBatch();
  // Reading is harmless, so the threads hash (or, with hashes given, check existence) while
  // this thread checks the input; canonicalising, which changes files, waits for the checks
  // and for every path to be known to exist.
  // Each .drv's outputs, read (and checked) with the other checks, before anything is touched.
  const drvOutputs = new Map<string, Record<string, string>>();
  const common = { derivationOutputsOf: (drv: string) => drvOutputs.get(drv) ?? store.derivationOutputsOf(drv), existenceChecked: true, acyclicChecked: true, pathsChecked: true, unique: true, references: batchRefs };
  const pool = new HashPool();
  try {
    return await registerBatch(pool);
  } finally {
    await pool.close();
  }

  async function registerBatch(pool: HashPool): Promise<string[]> {
    // Hashing, the threads canonicalise as they go once every path is known to exist and this
    // thread's checks have passed (the gate), so most paths are walked once instead of twice.
    // An input refused by the checks touches nothing; a path that fails to hash after the gate
    // opened (a FIFO inside it, a file that shrinks) fails the registration with the paths
    // before it already read-only, as Nix's register-validity leaves them.
    const gated = opts.canonicalise && !opts.hashGiven;
    let existing = !gated;
    let checked = false;
    const maybeOpen = () => {
      if (existing && checked) pool.openGate();
    };
    // The existence pass runs beside the hashing one (both are reads): hashing need not wait
    // for it, only canonicalising does.
    const reading = (async () => {
      // Queued first, so the gate does not wait for the whole hashing pass where threads are few.
      const exists = gated ? pool.run(paths, { hash: false, canonicalise: false }) : undefined;
      exists?.catch(() => {});
      const hashing = pool.run(paths, { hash: !opts.hashGiven, canonicalise: false, canonicaliseOnceOpen: gated });
      hashing.catch(() => {});
      if (exists) {
        try {
          await exists;
        } catch (e) {
          await hashing.catch(() => {});
          throw e;
        }
        existing = true;
        maybeOpen();
      }
      return hashing;
    })();
    reading.catch(() => {});
    let hashed: Awaited<typeof reading> | undefined;
    let order: PathOrder<Registration> | undefined;
    try {
      // A reference is in the input (in the batch or valid already) or outside it; only when
      // some outside one is not valid is the batch searched for the first entry naming it.
      const validOutside = db.validAmong([...outside]);
      if (validOutside.size < outside.size) {
        for (const r of batch) {
          r.references.forEach((ref, k) => {
            if (!outside.has(ref) || validOutside.has(ref)) return;
            // Named at its own line: the entry's lines are path, [hash, size,] deriver, count, references.
            const at = r.line + (opts.hashGiven ? 5 : 3) + k;
            throw new RegistrationError(`${what}: line ${at}: reference '${ref}' of '${r.path}' (entry at line ${r.line}) is not valid and not in the input`);
          });
        }
      }
      // Cycles too are refused before anything is touched (the DB would refuse them later),
      // and so is a .drv whose outputs are not the ones its contents give.
      try {
        checkAcyclicIndexed(paths, batchRefs);
      } catch (e) {
        if (!(e instanceof ReferenceCycleError)) throw e;
        // Named at the entry whose reference closes the cycle.
        const r = batch.find((b) => b.path === e.parent);
        if (r) fail(r, e.message);
        throw new RegistrationError(`${what}: ${e.message}`);
      }
      for (const r of batch) {
        if (!r.path.endsWith('.drv')) continue;
        try {
          drvOutputs.set(r.path, store.derivationOutputsOf(r.path));
        } catch (e) {
          // As the threads would say it; a .drv that does not parse or lies is bad input too.
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') fail(r, `cannot register: '${r.path}' does not exist on disk`);
          if (e instanceof DroverError && e.exitCode === 2) fail(r, e.message);
          throw e;
        }
      }
      checked = true;
      maybeOpen();
      // Sorted while the threads still hash (the rows are written in path order).
      order = PathOrder.of(batch);
      // With hashes given and nothing to change on disk (load-db), the rows need nothing from
      // the threads: they are written while the threads still check existence, and the
      // transaction commits only once every path turned out to exist.
      if (opts.hashGiven && !opts.canonicalise) {
        const infos = toInfos(undefined);
        await db.registerValidPaths(infos, { ...common, order: order.over(infos), beforeCommit: async () => void (await reading) });
        return paths;
      }
      hashed = await reading;
    } catch (e) {
      await reading.catch(() => {});
      throw readError(e);
    }
    const infos = toInfos(hashed);
    const ordered = { ...common, order: order!.over(infos) };
    if (!opts.canonicalise) {
      db.registerValidPaths(infos, ordered);
      return paths;
    }
    // The threads make the files read-only (those the hashing pass did not) while this thread
    // writes the rows; the transaction commits only once they are done, so no valid path is
    // ever writable.
    const rest = gated ? paths.filter((_, i) => !hashed![i]!.canonicalised) : paths;
    const canonicalising = pool.run(rest, { hash: false, canonicalise: true });
    canonicalising.catch(() => {});
    try {
      await db.registerValidPaths(infos, { ...ordered, beforeCommit: async () => void (await canonicalising) });
    } catch (e) {
      await canonicalising.catch(() => {});
      throw readError(e);
    }
    return paths;
  }

  /**
   * The batch's references as indices into the batch, in step with each entry's list (a
   * reference listed twice is written once: Refs rows are inserted or ignored).
   */
  function referencesInBatch(): IndexedReferences {
    const start = new Int32Array(batch.length + 1);
    for (let b = 0; b < batch.length; b++) start[b + 1] = start[b]! + batch[b]!.references.length;
    const target = new Int32Array(start[batch.length]!);
    let k = 0;
    for (let i = 0; i < entries.length; i++) {
      if (inBatch[i]! < 0) continue;
      for (let e = refStart[i]!; e < refStart[i + 1]!; e++) target[k++] = refEntry[e]! < 0 ? -1 : inBatch[refEntry[e]!]!;
    }
    return { start, target };
  }

  /** The rows to write: hashes from the input, or (without --hash-given) from the threads. */
  function toInfos(hashed: readonly (PathHashResult | undefined)[] | undefined): ValidPathInfo[] {
    return batch.map((r, i) => {
      // With hashes given, an entry already has a row's fields: no second object per path.
      if (opts.hashGiven) return r as ValidPathInfo;
      return { path: r.path, narHash: hashed![i]!.narHash, narSize: hashed![i]!.narSize, references: r.references, deriver: r.deriver };
    });
  }

  function readError(e: unknown): unknown {
    if (!(e instanceof PathReadError)) return e;
    const r = batch.find((b) => e.message.includes(`'${b.path}'`));
    return new RegistrationError(`${what}: ${r ? `line ${r.line}: ` : ''}cannot register: ${e.message}`);
  }
}
