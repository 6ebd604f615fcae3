// The validity DB: Nix 2.8's SQLite schema, its queries, and the one place that registers paths.
import fs from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { DroverError, StoreDbError } from './errors.js';
import { parseHash, type Hash } from './hash.js';
import { lockSync, type FileLock } from './locks.js';
import { parseStorePath } from './store-path.js';
import { topoSortPaths } from './topo-sort.js';

export const SCHEMA_VERSION = 10;
const SCHEMA_SQL = fs.readFileSync(new URL('../sql/schema.sql', import.meta.url), 'utf8');
// drover's own tables (FailedPaths): Nix never reads them, and they survive Nix opening the DB.
const DROVER_SCHEMA_SQL = fs.readFileSync(new URL('../sql/drover-schema.sql', import.meta.url), 'utf8');

/** What the DB knows about one valid path. */
export interface ValidPathInfo {
  path: string;
  narHash: Hash;
  narSize: number;
  references: string[];
  deriver?: string;
  ca?: string;
  registrationTime?: number;
  /** For a .drv: output name → output path, stored in DerivationOutputs. */
  derivationOutputs?: Record<string, string>;
}

/**
 * A registration the DB refuses because of what it names (a reference to nothing, a path
 * outside the store or missing on disk, a cycle): bad input, so exit 2, and nothing lands.
 */
export class RegistrationError extends DroverError {
  constructor(message: string) {
    super(message, 2);
  }
}

export interface RegisterOptions {
  /**
   * Reads a .drv's outputs when a registration does not give them, so DerivationOutputs is
   * filled as Nix fills it. Undefined: .drv paths without `derivationOutputs` get no rows.
   */
  derivationOutputsOf?: (drvPath: string) => Record<string, string>;
}

/** One row of the closure walk: a valid path and its references (as ids). */
interface IdPath {
  id: number;
  path: string;
}

export class StoreDb {
  readonly db: Database.Database;
  /** Store paths are checked against this dir when it is known. */
  readonly storeDir: string | undefined;
  private readonly bigLock: FileLock;
  private readonly stmts;

  /**
   * Opens (creating if needed) `STATE/db/db.sqlite`, holding db/big-lock shared for the
   * lifetime as Nix does, so a schema change by either side excludes the other.
   */
  constructor(
    readonly stateDir: string,
    opts: { storeDir?: string } = {},
  ) {
    this.storeDir = opts.storeDir;
    const dbDir = path.join(stateDir, 'db');
    fs.mkdirSync(dbDir, { recursive: true });
    this.bigLock = lockSync(path.join(dbDir, 'big-lock'), 'shared');
    const schemaFile = path.join(dbDir, 'schema');
    let version = 0;
    try {
      version = Number(fs.readFileSync(schemaFile, 'utf8').trim());
    } catch {
      /* new DB */
    }
    if (version > SCHEMA_VERSION) {
      this.bigLock.release();
      throw new StoreDbError(`the DB in ${dbDir} has schema version ${version}, newer than the ${SCHEMA_VERSION} drover knows`);
    }
    // Nix waits an hour on a busy DB; a build farm's registrations can queue that long.
    // Loaded here, not at import: commands that never open the DB start faster without it.
    const Sqlite = createRequire(import.meta.url)('better-sqlite3') as typeof Database;
    this.db = new Sqlite(path.join(dbDir, 'db.sqlite'), { timeout: 3_600_000 });
    this.db.pragma('journal_mode = wal');
    this.db.pragma('synchronous = normal');
    this.db.pragma('foreign_keys = 1');
    if (version < SCHEMA_VERSION) {
      this.db.exec(SCHEMA_SQL);
      writeFileAtomic(schemaFile, `${SCHEMA_VERSION}`);
    }
    this.db.exec(DROVER_SCHEMA_SQL);
    // Closure walks collect ids here (per connection, never written to disk).
    this.db.exec('create temp table if not exists Walk (id integer primary key)');
    this.stmts = {
      insert: this.db.prepare(
        'insert into ValidPaths (path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca) values (?, ?, ?, ?, ?, null, null, ?)',
      ),
      update: this.db.prepare('update ValidPaths set narSize = ?, hash = ?, ultimate = null, sigs = null, ca = ? where path = ?'),
      idOf: this.db.prepare('select id from ValidPaths where path = ?').pluck(),
      info: this.db.prepare('select id, path, hash, registrationTime, deriver, narSize, ca from ValidPaths where path = ?'),
      refs: this.db.prepare('select path from Refs join ValidPaths on reference = id where referrer = ? order by path').pluck(),
      referrers: this.db
        .prepare('select v.path from Refs r join ValidPaths v on r.referrer = v.id where r.reference = (select id from ValidPaths where path = ?) order by v.path')
        .pluck(),
      addRef: this.db.prepare('insert or replace into Refs (referrer, reference) values (?, ?)'),
      addOutput: this.db.prepare('insert or replace into DerivationOutputs (drv, id, path) values (?, ?, ?)'),
      outputs: this.db.prepare('select d.id, d.path from DerivationOutputs d join ValidPaths v on d.drv = v.id where v.path = ? order by d.id'),
      derivers: this.db.prepare('select v.path from DerivationOutputs d join ValidPaths v on d.drv = v.id where d.path = ? order by v.path').pluck(),
      allPaths: this.db.prepare('select path from ValidPaths order by path').pluck(),
      allInfo: this.db.prepare('select id, path, hash, registrationTime, deriver, narSize, ca from ValidPaths order by path'),
      allRefs: this.db.prepare('select referrer, reference from Refs').raw(),
      count: this.db.prepare('select count(*) from ValidPaths').pluck(),
      walkClear: this.db.prepare('delete from temp.Walk'),
      walkSeed: this.db.prepare('insert or ignore into temp.Walk (id) select id from ValidPaths where path in (select value from json_each(?))'),
      walkDown: this.db.prepare(
        `insert into temp.Walk (id)
           with recursive c(id) as (
             select id from ValidPaths where path in (select value from json_each(?))
             union select r.reference from Refs r join c on r.referrer = c.id)
           select id from c`,
      ),
      walkUp: this.db.prepare(
        `insert into temp.Walk (id)
           with recursive c(id) as (
             select id from ValidPaths where path in (select value from json_each(?))
             union select r.referrer from Refs r join c on r.reference = c.id)
           select id from c`,
      ),
      walkPaths: this.db.prepare('select v.id, v.path from temp.Walk w join ValidPaths v on v.id = w.id'),
      walkEdges: this.db.prepare('select r.referrer, r.reference from Refs r join temp.Walk w on r.referrer = w.id').raw(),
    };
  }

  close(): void {
    if (this.db.open) this.db.close();
    this.bigLock.release();
  }

  isValid(p: string): boolean {
    return this.stmts.idOf.get(p) !== undefined;
  }

  queryPathInfo(p: string): ValidPathInfo | undefined {
    const row = this.stmts.info.get(p) as InfoRow | undefined;
    if (!row) return undefined;
    return this.toInfo(row, this.stmts.refs.all(row.id) as string[]);
  }

  private toInfo(row: InfoRow, references: string[]): ValidPathInfo {
    return {
      path: row.path,
      narHash: parseHash(row.hash),
      narSize: row.narSize ?? 0,
      references,
      deriver: row.deriver ?? undefined,
      ca: row.ca ?? undefined,
      registrationTime: row.registrationTime,
    };
  }

  /** Valid paths that refer to `p`, sorted. */
  queryReferrers(p: string): string[] {
    return this.stmts.referrers.all(p) as string[];
  }

  /** DerivationOutputs of a valid .drv, output name → path (empty when none are recorded). */
  queryDerivationOutputs(drvPath: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const row of this.stmts.outputs.all(drvPath) as { id: string; path: string }[]) out[row.id] = row.path;
    return out;
  }

  /** Valid .drv paths that list `p` as one of their outputs. */
  queryValidDerivers(p: string): string[] {
    return this.stmts.derivers.all(p) as string[];
  }

  countValidPaths(): number {
    return this.stmts.count.get() as number;
  }

  allValidPaths(): string[] {
    return this.stmts.allPaths.all() as string[];
  }

  /**
   * Every valid path with its references, sorted by path, from two table scans: what
   * dump-db and verify need, without a query per path.
   */
  *allPathInfos(): Generator<ValidPathInfo> {
    const pathOf = new Map<number, string>();
    const rows = this.stmts.allInfo.all() as InfoRow[];
    for (const r of rows) pathOf.set(r.id, r.path);
    const refs = new Map<number, string[]>();
    for (const [referrer, reference] of this.stmts.allRefs.iterate() as Iterable<[number, number]>) {
      const target = pathOf.get(reference);
      // A reference to a missing row can only come from a DB written without foreign keys.
      const name = target ?? `<missing id ${reference}>`;
      const list = refs.get(referrer);
      if (list) list.push(name);
      else refs.set(referrer, [name]);
    }
    for (const r of rows) yield this.toInfo(r, (refs.get(r.id) ?? []).sort());
  }

  /**
   * The closure of `roots` (references, or referrers with `up`) as a graph: every path in
   * it and, for each, its references inside the closure. One recursive query and one join,
   * however long the closure; unknown roots are simply absent from the result.
   */
  closure(roots: readonly string[], opts: { up?: boolean } = {}): Map<string, string[]> {
    return this.readTransaction(() => {
      this.stmts.walkClear.run();
      (opts.up ? this.stmts.walkUp : this.stmts.walkDown).run(JSON.stringify(roots));
      return this.walkGraph();
    });
  }

  /** The given valid paths with their references among themselves (for topological sorting). */
  subgraph(paths: readonly string[]): Map<string, string[]> {
    return this.readTransaction(() => {
      this.stmts.walkClear.run();
      this.stmts.walkSeed.run(JSON.stringify(paths));
      return this.walkGraph();
    });
  }

  private walkGraph(): Map<string, string[]> {
    const pathOf = new Map<number, string>();
    const graph = new Map<string, string[]>();
    for (const r of this.stmts.walkPaths.all() as IdPath[]) {
      pathOf.set(r.id, r.path);
      graph.set(r.path, []);
    }
    for (const [referrer, reference] of this.stmts.walkEdges.iterate() as Iterable<[number, number]>) {
      const to = pathOf.get(reference);
      if (to !== undefined) graph.get(pathOf.get(referrer)!)!.push(to);
    }
    this.stmts.walkClear.run();
    return graph;
  }

  /** Runs `fn` in one deferred transaction: a consistent snapshot for multi-statement reads. */
  private readTransaction<T>(fn: () => T): T {
    return this.db.transaction(fn).deferred();
  }

  /**
   * Registers a batch in one transaction: all land or none do, whatever kills the process.
   * Every reference must be valid already or in the batch, every path must be a store path
   * of this store that exists on disk (invariants 1 and 2), and the references inside the
   * batch must not form a cycle. Re-registering a valid path updates its hash, size and ca
   * and adds references, as Nix's updatePathInfo does. A .drv path gets its
   * DerivationOutputs rows from `info.derivationOutputs` or `opts.derivationOutputsOf`.
   */
  registerValidPaths(infos: readonly ValidPathInfo[], opts: RegisterOptions = {}): void {
    const batch = new Map<string, ValidPathInfo>();
    for (const info of infos) {
      this.checkPath(info.path, 'path');
      if (info.deriver) this.checkPath(info.deriver, `deriver of '${info.path}'`);
      if (info.narHash.algo !== 'sha256') throw new RegistrationError(`cannot register '${info.path}': its NAR hash must be sha256, not ${info.narHash.algo}`);
      if (!Number.isSafeInteger(info.narSize) || info.narSize < 0) throw new RegistrationError(`cannot register '${info.path}': bad NAR size ${info.narSize}`);
      batch.set(info.path, info);
    }
    for (const info of batch.values()) {
      try {
        fs.lstatSync(info.path);
      } catch {
        throw new RegistrationError(`cannot register '${info.path}': it does not exist on disk`);
      }
      for (const ref of info.references) this.checkPath(ref, `reference of '${info.path}'`);
    }
    // Nix rejects cycles inside a batch (they would make the store unexportable).
    topoSortPaths(batch.keys(), (p) => batch.get(p)?.references);
    const outputs = new Map<string, Record<string, string>>();
    for (const info of batch.values()) {
      if (info.derivationOutputs) outputs.set(info.path, info.derivationOutputs);
      else if (info.path.endsWith('.drv') && opts.derivationOutputsOf) outputs.set(info.path, opts.derivationOutputsOf(info.path));
    }
    const now = Math.floor(Date.now() / 1000);
    const run = this.db.transaction(() => {
      const ids = new Map<string, number>();
      for (const info of batch.values()) {
        const hash = info.narHash.toString('base16', true);
        const existing = this.stmts.idOf.get(info.path) as number | undefined;
        if (existing !== undefined) {
          this.stmts.update.run(info.narSize, hash, info.ca ?? null, info.path);
          ids.set(info.path, existing);
        } else {
          const r = this.stmts.insert.run(info.path, hash, info.registrationTime ?? now, info.deriver ?? null, info.narSize, info.ca ?? null);
          ids.set(info.path, Number(r.lastInsertRowid));
        }
      }
      for (const info of batch.values()) {
        const id = ids.get(info.path)!;
        for (const ref of info.references) {
          const refId = ids.get(ref) ?? (this.stmts.idOf.get(ref) as number | undefined);
          if (refId === undefined) throw new RegistrationError(`cannot register '${info.path}': its reference '${ref}' is not valid and not in the batch`);
          this.stmts.addRef.run(id, refId);
        }
        for (const [name, out] of Object.entries(outputs.get(info.path) ?? {})) this.stmts.addOutput.run(id, name, out);
      }
    });
    run.immediate();
  }

  private checkPath(p: string, what: string): void {
    if (!this.storeDir) return;
    try {
      parseStorePath(this.storeDir, p);
    } catch (e) {
      throw new RegistrationError(`${what}: ${(e as Error).message}`);
    }
  }
}

interface InfoRow {
  id: number;
  path: string;
  hash: string;
  registrationTime: number;
  deriver: string | null;
  narSize: number | null;
  ca: string | null;
}

/** Replaces `file` whole or not at all: write a temp sibling, fsync, rename. */
export function writeFileAtomic(file: string, data: string | Buffer): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}
