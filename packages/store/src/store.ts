// A store on disk: its config, its validity DB, and the one way paths get written into it.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { loadNative, type NativeError } from './native.js';
import { StoreDb, type DbOpenMode, type ValidPathInfo } from './db.js';
import { resolveConfig, type StoreConfig } from './config.js';
import { ByteReader } from './byte-reader.js';
import { narStreamAuto, restoreNar, removeTree, hashPath, hashPathAsync, hashFile } from './nar.js';
import { Hash, type HashAlgo } from './hash.js';
import { fixedOutputCa, makeFixedOutputPath, makeTextPath, printableName, storeNameProblem, textCa } from './store-path.js';
import { lock, tryLock, type FileLock } from './locks.js';
import { gcLockFile } from './temp-roots.js';
import { pidAlive } from './pid-alive.js';
import { derivationName, readDerivation } from './derivation.js';
import { computeOutputPaths, copyDerivation, type DerivationReader } from './derivation-hash.js';
import { DerivationFormatError, DroverError, StorePathError, UsageError } from './errors.js';

/** A text file for Store.addTextsToStore: its name, contents, references and (a .drv's) outputs. */
export interface TextToAdd {
  name: string;
  contents: string;
  references: readonly string[];
  derivationOutputs?: Record<string, string>;
}

export class Store {
  readonly storeDir: string;
  readonly stateDir: string;
  /** How the DB is opened: commands that only read pass `existing` or `or-empty` (db.ts). */
  readonly open: DbOpenMode;
  private _db: StoreDb | undefined;
  /** Nix's GC lock held shared while this store writes (withGcLock), and how many writes hold it. */
  private gcLock: Promise<FileLock> | undefined;
  private gcLockUsers = 0;

  constructor(config: Partial<StoreConfig> & { open?: DbOpenMode } = {}) {
    const c = resolveConfig(config);
    this.storeDir = c.storeDir;
    this.stateDir = c.stateDir;
    this.open = config.open ?? 'create';
  }

  /** The validity DB, opened on first use (pure commands never create a state dir). */
  get db(): StoreDb {
    if (!this._db) {
      if (this.open === 'create') fs.mkdirSync(this.storeDir, { recursive: true });
      this._db = new StoreDb(this.stateDir, { storeDir: this.storeDir, open: this.open });
    }
    return this._db;
  }

  close(): void {
    this._db?.close();
    this._db = undefined;
    void this.gcLock?.then((l) => l.release(), () => {});
    this.gcLock = undefined;
    this.gcLockUsers = 0;
  }

  /**
   * Runs `fn`, which writes into the store dir, holding Nix's global GC lock
   * (`STATE/gc.lock`) shared; nested and concurrent calls share one hold.
   *
   * Why: `nix-store --gc` holds that lock exclusively from reading the roots until it has
   * deleted the garbage, and deletes every entry of the store dir that is neither valid nor a
   * temporary root of a live process: drover's `.drover-tmp-*` scratch copies mid-write, and
   * a path renamed into place but not yet registered, which the registration then made valid
   * while missing on disk. Nix's own writers register their paths as temporary roots
   * (STATE/temproots/PID), but a scratch name is no store path a root could name. Holding the
   * lock shared for the whole write is the coarse form of the same contract (Nix's
   * addTempRoot takes it shared too): a collection waits until the write is done, a write
   * until a running collection is. What the write registers then has no root, so the next
   * collection deletes it, with its registration, as it would Nix's.
   */
  async withGcLock<T>(fn: () => Promise<T>): Promise<T> {
    if (this.gcLockUsers++ === 0) this.gcLock = lock(gcLockFile(this.stateDir), { mode: 'shared' });
    const held = this.gcLock!;
    try {
      await held;
      return await fn();
    } finally {
      if (--this.gcLockUsers === 0 && this.gcLock === held) {
        this.gcLock = undefined;
        await held.then((l) => l.release(), () => {});
      }
    }
  }

  /** A scratch name inside the store dir, so the final rename is atomic (same file system). */
  tempPath(): string {
    fs.mkdirSync(this.storeDir, { recursive: true });
    return path.join(this.storeDir, `.drover-tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  }

  /**
   * A scratch directory inside the store dir (same name pattern as tempPath, so a killed
   * process's leftover is cleaned the same way). An import restores its entries in here:
   * creating files in a directory other than the store dir, where the lock files are
   * created, lets the file system do both at once (each directory serialises its creates).
   */
  tempDir(): string {
    const dir = this.tempPath();
    fs.mkdirSync(dir, { mode: 0o700 });
    return dir;
  }

  /**
   * Moves finished, canonical contents from `tmp` to `dest` and registers them, under
   * dest's `.lock` (the lock file Nix uses too). Contents are synced before registration,
   * so a valid path is never incomplete on disk; a leftover invalid `dest` is replaced.
   */
  async commitPath(tmp: string, info: ValidPathInfo): Promise<void> {
    await this.commitPaths([{ tmp, info }]);
  }

  /**
   * commitPath for a batch, in one registration: locks every new path's `PATH.lock` (in
   * sorted order, so two committers of overlapping batches cannot deadlock), one syncfs for
   * all contents, renames, then one transaction. Paths already valid just drop their temp
   * copy. A batch larger than COMMIT_CHUNK is committed in chunks, in the order given
   * (which must be references first), so the closure invariant holds after each chunk and
   * the number of lock files held stays bounded by the open-file limit.
   * Returns the paths that this call made valid.
   */
  async commitPaths(items: readonly { tmp: string; info: ValidPathInfo }[], opts: { preLocked?: Map<string, FileLock> } = {}): Promise<string[]> {
    return this.withGcLock(() => this.commitPathsLocked(items, opts));
  }

  private async commitPathsLocked(items: readonly { tmp: string; info: ValidPathInfo }[], opts: { preLocked?: Map<string, FileLock> }): Promise<string[]> {
    const added: string[] = [];
    const pre = opts.preLocked ?? new Map<string, FileLock>();
    let i = 0;
    try {
      for (; i < items.length; i += COMMIT_CHUNK) {
        added.push(...(await this.commitChunk(items.slice(i, i + COMMIT_CHUNK), pre)));
        // What is left of them (paths found valid, or held for us) must not be held, out of
        // order, while a later chunk waits for its locks.
        for (const l of pre.values()) l.release({ unlink: true });
        pre.clear();
      }
    } catch (e) {
      // The failed chunk cleaned up after itself; the chunks after it were never started.
      for (const item of items.slice(i + COMMIT_CHUNK)) removeTree(item.tmp);
      throw e;
    } finally {
      for (const l of pre.values()) l.release({ unlink: true });
    }
    return added;
  }

  private async commitChunk(items: readonly { tmp: string; info: ValidPathInfo }[], pre: Map<string, FileLock>): Promise<string[]> {
    const pending = new Map<string, { tmp: string; info: ValidPathInfo }>();
    // One query for the chunk, not one per path (an import commits a thousand at a time).
    const validBefore = this.db.validAmong(items.map((i) => i.info.path));
    for (const item of items) {
      if (pending.has(item.info.path) || validBefore.has(item.info.path)) removeTree(item.tmp);
      else pending.set(item.info.path, item);
    }
    const locks: FileLock[] = [];
    const renamed: string[] = [];
    try {
      const held = heldLocks();
      const mine = [...pending.keys()].filter((p) => !held.has(p)).sort();
      // Locks taken while the stream was read (never waited for, so out of order) are kept
      // only if every other lock of the chunk is free now too; waiting for one while holding
      // them could deadlock with another committer. Otherwise all are taken again, in order.
      if (mine.some((p) => pre.has(p))) {
        for (const p of mine) {
          const l = pre.get(p) ?? tryLock(`${p}.lock`);
          pre.delete(p);
          if (!l) break;
          locks.push(l);
        }
      }
      if (locks.length < mine.length) {
        for (const l of locks.splice(0)) l.release();
        // Lock files of this chunk stay for the waits below; the others are done with.
        for (const [p, l] of pre) l.release({ unlink: !pending.has(p) });
        pre.clear();
        for (const p of mine) locks.push(await lock(`${p}.lock`));
      }
      // Someone else may have finished a path while we waited for its lock.
      const validNow = this.db.validAmong([...pending.keys()]);
      for (const [p, item] of pending) {
        if (validNow.has(p)) {
          removeTree(item.tmp);
          pending.delete(p);
        }
      }
      if (pending.size === 0) return [];
      await syncFileSystem(this.storeDir);
      for (const [p, item] of pending) {
        removeTree(p);
        // Listed first: a move that fails half-way (renamed, not made read-only again) is undone too.
        renamed.push(p);
        moveInto(item.tmp, p);
      }
      this.db.registerValidPaths(
        [...pending.values()].map((i) => i.info),
        { derivationOutputsOf: (drv) => this.derivationOutputsOf(drv) },
      );
      return renamed;
    } catch (e) {
      // Nothing was registered: take back what we moved in, and the temp copies.
      for (const p of renamed) removeTree(p);
      for (const item of pending.values()) removeTree(item.tmp);
      throw e;
    } finally {
      await Promise.all(locks.map((l) => l.releaseAsync({ unlink: true })));
    }
  }

  /**
   * The outputs a .drv on disk declares, for DerivationOutputs when a registration does not
   * give them (register-validity, import). `file` and `read` are for contents not in place
   * yet: where this .drv's are, and how its input derivations are read (readDerivation).
   */
  derivationOutputsOf(drvPath: string, opts: { file?: string; read?: DerivationReader } = {}): Record<string, string> {
    const drv = readDerivation(this, drvPath, opts.file);
    // As Nix's checkDerivationOutputs: a .drv (from an export stream, say) whose output paths
    // are not the ones its contents give would make every later lookup of them lie.
    const computed = computeOutputPaths(this, derivationName(drvPath), copyDerivation(drv), { read: opts.read });
    const outs: Record<string, string> = {};
    for (const [name, o] of Object.entries(drv.outputs)) {
      if (o.path !== computed[name]) {
        throw new DerivationFormatError(`derivation '${drvPath}' has incorrect output '${name}': '${o.path}', should be '${computed[name]}'`);
      }
      // The builder finds its output by this variable: one naming another path would build
      // there, and Nix refuses such a .drv as well (checkInvariants' envHasRightPath).
      if (drv.env[name] !== o.path) {
        const given = drv.env[name] === undefined ? 'missing' : `'${drv.env[name]}'`;
        throw new DerivationFormatError(`derivation '${drvPath}' has incorrect environment variable '${name}': ${given}, should be '${o.path}'`);
      }
      outs[name] = o.path;
    }
    return outs;
  }

  /**
   * Removes `.drover-tmp-PID-*` leftovers of processes that are gone (killed mid-import or
   * mid-add). A pid that was recycled by a live process just keeps its leftover longer.
   */
  cleanStaleTemps(): number {
    let names: string[];
    try {
      names = fs.readdirSync(this.storeDir);
    } catch {
      return 0;
    }
    let removed = 0;
    for (const name of names) {
      const m = /^\.drover-tmp-(\d+)-/.exec(name);
      if (!m || pidAlive(Number(m[1]))) continue;
      removeTree(path.join(this.storeDir, name));
      removed++;
    }
    return removed;
  }

  /**
   * Adds a file or tree as `nix-store --add` / `--add-fixed` do: the path comes from the hash
   * of what is written (NAR for recursive, the file's bytes for flat). One read of `src`.
   */
  async addToStore(src: string, opts: { recursive?: boolean; algo?: HashAlgo; dryRun?: boolean; name?: string } = {}): Promise<string> {
    const recursive = opts.recursive ?? true;
    const algo = opts.algo ?? 'sha256';
    const name = opts.name ?? path.basename(path.resolve(src));
    const problem = storeNameProblem(name);
    if (problem) {
      // The name is shown only when it is not plain in the path as typed (`.`, `dir/..`, a given name).
      const its = opts.name !== undefined ? `the name '${printableName(name)}'` : path.basename(src) === name ? 'its name' : `its name '${printableName(name)}'`;
      throw new StorePathError(`cannot add '${printableName(src)}': ${its} ${problem}`);
    }
    let st: fs.Stats;
    try {
      st = fs.lstatSync(src);
    } catch (e) {
      throw new UsageError(`cannot add '${src}': ${(e as Error).message}`);
    }
    if (!recursive && !st.isFile()) throw new UsageError(`cannot add '${src}' flat: it is not a regular file`);
    if (opts.dryRun) {
      const h = recursive ? (await hashPathAsync(src, algo)).hash : hashFile(src, algo);
      return makeFixedOutputPath(this.storeDir, name, recursive, h);
    }
    return this.withGcLock(() => this.addToStoreLocked(src, name, recursive, algo));
  }

  private async addToStoreLocked(src: string, name: string, recursive: boolean, algo: HashAlgo): Promise<string> {
    const tmp = this.tempPath();
    try {
      const narHasher = createHash('sha256');
      const caHasher = recursive && algo !== 'sha256' ? createHash(algo) : undefined;
      const r = new ByteReader(narStreamAuto(src));
      r.taps.push(narHasher);
      if (caHasher) r.taps.push(caHasher);
      let flatHash: ReturnType<typeof createHash> | undefined;
      if (!recursive) {
        flatHash = createHash(algo);
      }
      await restoreNar(r, tmp, `archive of '${src}'`, { canonical: true, onFileChunk: flatHash ? (c) => flatHash!.update(c) : undefined });
      const narSize = r.offset;
      const narHash = new Hash('sha256', narHasher.digest());
      const caHash = recursive ? (caHasher ? new Hash(algo, caHasher.digest()) : narHash) : new Hash(algo, flatHash!.digest());
      const dest = makeFixedOutputPath(this.storeDir, name, recursive, caHash);
      await this.commitPath(tmp, { path: dest, narHash, narSize, references: [], ca: fixedOutputCa(recursive, caHash) });
      return dest;
    } catch (e) {
      removeTree(tmp);
      throw e;
    }
  }

  /** Adds a text file (such as a .drv) with references, as Nix's addTextToStore does. */
  async addTextToStore(
    name: string,
    contents: string,
    references: string[],
    opts: { dryRun?: boolean; derivationOutputs?: Record<string, string> } = {},
  ): Promise<string> {
    const dest = makeTextPath(this.storeDir, name, contents, references);
    if (opts.dryRun || this.db.isValid(dest)) return dest;
    await this.addTextsToStore([{ name, contents, references, derivationOutputs: opts.derivationOutputs }]);
    return dest;
  }

  /**
   * addTextToStore for a batch (references first), in one registration: a process killed
   * half-way leaves none of them valid, where one registration per file would leave a prefix.
   * Returns their paths, in the order given. `cleanStale`: first remove the scratch copies
   * of killed processes (cleanStaleTemps).
   */
  async addTextsToStore(texts: readonly TextToAdd[], opts: { cleanStale?: boolean } = {}): Promise<string[]> {
    const dests = texts.map((t) => makeTextPath(this.storeDir, t.name, t.contents, t.references));
    await this.withGcLock(async () => {
      // A killed run's copies are left in one scratch dir, which a later batch removes (as
      // import does; not every single file's write, as each costs a read of the store dir).
      if (opts.cleanStale) this.cleanStaleTemps();
      const dir = this.tempDir();
      const items: { tmp: string; info: ValidPathInfo }[] = [];
      const seen = new Set<string>();
      try {
        texts.forEach((t, i) => {
          const dest = dests[i]!;
          if (seen.has(dest) || this.db.isValid(dest)) return;
          seen.add(dest);
          const tmp = path.join(dir, String(i));
          fs.writeFileSync(tmp, t.contents, { mode: 0o444 });
          fs.utimesSync(tmp, 1, 1);
          const { hash: narHash, size: narSize } = hashPath(tmp);
          const ca = textCa(new Hash('sha256', createHash('sha256').update(t.contents).digest()));
          items.push({ tmp, info: { path: dest, narHash, narSize, references: [...t.references].sort(), ca, derivationOutputs: t.derivationOutputs } });
        });
        await this.commitPaths(items);
      } finally {
        removeTree(dir);
      }
    });
    return dests;
  }

  /** Checks that `p` is a store path of this store, naming the input on error. */
  checkInStore(p: string): string {
    if (!p.startsWith(this.storeDir + '/')) throw new StorePathError(`path '${p}' is not in the store dir ${this.storeDir}`);
    return p;
  }
}

/**
 * Renames `tmp` to `dest`. A directory moved to another parent needs write permission on
 * itself (its `..` changes), which a canonical (read-only) tree lacks unless we are root:
 * it gets it for the rename only.
 */
function moveInto(tmp: string, dest: string): void {
  try {
    fs.renameSync(tmp, dest);
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EACCES' || !fs.lstatSync(tmp).isDirectory()) throw e;
  }
  const mode = fs.statSync(tmp).mode & 0o7777;
  fs.chmodSync(tmp, mode | 0o200);
  fs.renameSync(tmp, dest);
  fs.chmodSync(dest, mode);
}

/**
 * Output locks that the parent process holds on our behalf (`DROVER_HELD_LOCKS`, paths
 * separated by spaces, as Nix's NIX_HELD_LOCKS): a build hook importing the outputs of a
 * build whose scheduler locked them must not wait for those locks, or both wait forever.
 */
export function heldLocks(): Set<string> {
  return new Set((process.env.DROVER_HELD_LOCKS ?? '').split(/\s+/).filter((p) => p.length > 0));
}

/** Most new paths one transaction commits: each holds a lock file open until the commit. */
export const COMMIT_CHUNK = 4096;


/**
 * Flushes the file system holding `p` with one syncfs(2), on a libuv thread: one call per
 * batch instead of an fsync per file, which would cost a journal commit for every small
 * file. A failure (EIO: the disk did not take the data) fails the batch before it is registered.
 */
export async function syncFileSystem(p: string): Promise<void> {
  if (process.env.DROVER_NO_SYNC === '1') return;
  try {
    await loadNative().syncFs(p);
  } catch (e) {
    // A sandbox without syncfs(2) (seccomp, gVisor): sync(2) flushes every file system.
    // (child_process loaded only here: it costs every command ~2 ms of start-up.)
    if ((e as NativeError).code === 'ENOSYS' && (await import('node:child_process')).spawnSync('sync', { stdio: 'ignore' }).status === 0) return;
    throw new DroverError(`cannot flush the store's file system to disk: ${(e as Error).message}, ${(e as NativeError).syscall} '${p}'`, 1, { cause: e });
  }
}
