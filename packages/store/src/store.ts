// A store on disk: its config, its validity DB, and the one way paths get written into it.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { StoreDb, type ValidPathInfo } from './db.js';
import { resolveConfig, type StoreConfig } from './config.js';
import { ByteReader } from './byte-reader.js';
import { narChunks, restoreNar, removeTree, hashPath, hashFile } from './nar.js';
import { Hash, type HashAlgo } from './hash.js';
import { checkStoreName, fixedOutputCa, makeFixedOutputPath, makeTextPath, textCa } from './store-path.js';
import { lock } from './locks.js';
import { StorePathError, UsageError } from './errors.js';

export class Store {
  readonly storeDir: string;
  readonly stateDir: string;
  private _db: StoreDb | undefined;

  constructor(config: Partial<StoreConfig> = {}) {
    const c = resolveConfig(config);
    this.storeDir = c.storeDir;
    this.stateDir = c.stateDir;
  }

  /** The validity DB, opened on first use (pure commands never create a state dir). */
  get db(): StoreDb {
    if (!this._db) {
      fs.mkdirSync(this.storeDir, { recursive: true });
      this._db = new StoreDb(this.stateDir);
    }
    return this._db;
  }

  close(): void {
    this._db?.close();
    this._db = undefined;
  }

  /** A scratch name inside the store dir, so the final rename is atomic (same file system). */
  tempPath(): string {
    fs.mkdirSync(this.storeDir, { recursive: true });
    return path.join(this.storeDir, `.drover-tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  }

  /**
   * Moves finished, canonical contents from `tmp` to `dest` and registers them, under
   * dest's `.lock` (the lock file Nix uses too). Contents are synced before registration,
   * so a valid path is never incomplete on disk; a leftover invalid `dest` is replaced.
   */
  async commitPath(tmp: string, info: ValidPathInfo): Promise<void> {
    const l = await lock(`${info.path}.lock`);
    try {
      if (this.db.isValid(info.path)) {
        removeTree(tmp);
        return;
      }
      removeTree(info.path);
      syncFileSystem(tmp);
      fs.renameSync(tmp, info.path);
      this.db.registerValidPaths([info]);
    } finally {
      l.release({ unlink: true });
    }
  }

  /**
   * Adds a file or tree as `nix-store --add` / `--add-fixed` do: the path comes from the hash
   * of what is written (NAR for recursive, the file's bytes for flat). One read of `src`.
   */
  async addToStore(src: string, opts: { recursive?: boolean; algo?: HashAlgo; dryRun?: boolean; name?: string } = {}): Promise<string> {
    const recursive = opts.recursive ?? true;
    const algo = opts.algo ?? 'sha256';
    const name = checkStoreName(opts.name ?? path.basename(path.resolve(src)), `name of '${src}'`);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(src);
    } catch (e) {
      throw new UsageError(`cannot add '${src}': ${(e as Error).message}`);
    }
    if (!recursive && !st.isFile()) throw new UsageError(`cannot add '${src}' flat: it is not a regular file`);
    if (opts.dryRun) {
      const h = recursive ? hashPath(src, algo).hash : hashFile(src, algo);
      return makeFixedOutputPath(this.storeDir, name, recursive, h);
    }
    const tmp = this.tempPath();
    try {
      const narHasher = createHash('sha256');
      const caHasher = recursive && algo !== 'sha256' ? createHash(algo) : undefined;
      const r = new ByteReader(toAsync(narChunks(src)));
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
    const tmp = this.tempPath();
    try {
      fs.writeFileSync(tmp, contents, { mode: 0o444 });
      fs.utimesSync(tmp, 1, 1);
      const { hash: narHash, size: narSize } = hashPath(tmp);
      const contentHash = new Hash('sha256', createHash('sha256').update(contents).digest());
      await this.commitPath(tmp, {
        path: dest,
        narHash,
        narSize,
        references: [...references].sort(),
        ca: textCa(contentHash),
        derivationOutputs: opts.derivationOutputs,
      });
      return dest;
    } catch (e) {
      removeTree(tmp);
      throw e;
    }
  }

  /** Checks that `p` is a store path of this store, naming the input on error. */
  checkInStore(p: string): string {
    if (!p.startsWith(this.storeDir + '/')) throw new StorePathError(`path '${p}' is not in the store dir ${this.storeDir}`);
    return p;
  }
}

async function* toAsync<T>(gen: Iterable<T>): AsyncGenerator<T> {
  yield* gen;
}

/**
 * Flushes the file system holding `p` with one syncfs(2) (`sync -f`): one call per batch
 * instead of an fsync per file, which would cost a journal commit for every small file.
 */
export function syncFileSystem(p: string): void {
  if (process.env.DROVER_NO_SYNC === '1') return;
  const r = spawnSync('sync', ['-f', p], { stdio: 'ignore' });
  if (r.error || r.status !== 0) {
    // Not fatal for correctness after a process crash, only after power loss: fall back.
    const fd = fs.openSync(p, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}
