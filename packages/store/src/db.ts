// The validity DB: Nix 2.8's SQLite schema, its queries, and the one place that registers paths.
import fs from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { DroverError, StoreDbError } from './errors.js';
import { parseHash, type Hash } from './hash.js';
import { lockSync, type FileLock } from './locks.js';
import { pidAlive } from './pid-alive.js';
import { parseStorePath } from './store-path.js';
import { checkAcyclic, graphFromEdges, type IndexedReferences, type PathGraph } from './topo-sort.js';
import { PathOrder } from './path-order.js';

export const SCHEMA_VERSION = 10;
/** Closures up to this many paths are walked by single-row lookups. */
const PROBE_LIMIT = 2048;
/** Stores up to this many rows walk big closures in memory; bigger ones in SQL. */
const IN_MEMORY_MAX = 1_000_000;
/**
 * Rows per multi-row insert: one call into SQLite per chunk instead of per row (the per-call
 * cost was most of a 100k registration), well under SQLite's 32,766 parameters.
 */
const ROWS_PER_INSERT = 128;
const UPSERT_HEAD = 'insert into ValidPaths (path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca) values';
const UPSERT_ROW = '(?, ?, ?, ?, ?, null, null, ?)';
const UPSERT_TAIL = 'on conflict (path) do update set narSize = excluded.narSize, hash = excluded.hash, ultimate = null, sigs = null, ca = excluded.ca';
const REFS_HEAD = 'insert or ignore into Refs (referrer, reference) values';
/**
 * better-sqlite3's compiled addon by its path when it is where its build puts it: otherwise
 * each open looks for it with the 'bindings' package, which probes a dozen places (1-3 ms
 * of every command that opens the DB).
 */
function sqliteBinding(): { nativeBinding?: string } {
  if (sqliteAddon === undefined) {
    try {
      const at = createRequire(import.meta.url).resolve('better-sqlite3/build/Release/better_sqlite3.node');
      sqliteAddon = fs.existsSync(at) ? at : null;
    } catch {
      sqliteAddon = null;
    }
  }
  return sqliteAddon ? { nativeBinding: sqliteAddon } : {};
}
let sqliteAddon: string | null | undefined;

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
  /**
   * Read from the DB only (a registration writes neither, as Nix's register-validity does
   * not): the path was built here (`ultimate`, set by Nix's builds), and its signatures
   * (`sigs`, space-separated there; `nix store sign` adds them), sorted and distinct as
   * Nix's set of them.
   */
  ultimate?: boolean;
  sigs?: string[];
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
   * The caller has just checked that every path exists on disk (register-validity does, before
   * canonicalising), so the DB need not lstat them again.
   */
  existenceChecked?: boolean;
  /** The caller has already refused cycles in this batch (register-validity does). */
  acyclicChecked?: boolean;
  /** The caller has already checked that every path, deriver and reference is a store path of this store. */
  pathsChecked?: boolean;
  /** No two registrations name the same path (register-validity keeps each path's last entry). */
  unique?: boolean;
  /** The batch in path order, made by the caller while it waited for something else (with `unique`). */
  order?: PathOrder<ValidPathInfo>;
  /**
   * Each info's references as indices into the batch (with `unique`), in step with its
   * `references` list; -1 for a path outside the batch, which is then looked up by its text.
   * New rows' references then need no lookup at all.
   */
  references?: IndexedReferences;
  /**
   * Reads a .drv's outputs when a registration does not give them, so DerivationOutputs is
   * filled as Nix fills it. Undefined: .drv paths without `derivationOutputs` get no rows.
   */
  derivationOutputsOf?: (drvPath: string) => Record<string, string>;
}

/**
 * How a StoreDb opens its state dir. `create` (commands that write) makes the dir and a new
 * DB when there is none; `existing` and `or-empty` (commands that only read) change nothing:
 * a missing DB is NoValidityDbError for `existing`, an empty store for `or-empty`.
 */
export type DbOpenMode = 'create' | 'existing' | 'or-empty';

/** A reading command found no validity DB in the state dir (most likely the wrong dir). */
export class NoValidityDbError extends StoreDbError {}

export class StoreDb {
  readonly db: Database.Database;
  /** Store paths are checked against this dir when it is known. */
  readonly storeDir: string | undefined;
  /** Held shared while the DB is open; none for the empty stand-in of a missing DB. */
  private readonly bigLock: FileLock | undefined;
  private readonly stmts;

  /**
   * Opens `STATE/db/db.sqlite` (creating it if needed, with the default `create`), holding
   * db/big-lock shared for the lifetime as Nix does, so a schema change by either side
   * excludes the other.
   */
  constructor(
    readonly stateDir: string,
    opts: { storeDir?: string; open?: DbOpenMode } = {},
  ) {
    this.storeDir = opts.storeDir;
    const mode = opts.open ?? 'create';
    const dbDir = path.join(stateDir, 'db');
    const dbFile = path.join(dbDir, 'db.sqlite');
    const schemaFile = path.join(dbDir, 'schema');
    // Loaded here, not at import: commands that never open the DB start faster without it.
    const sqlite = () => createRequire(import.meta.url)('better-sqlite3') as typeof Database;
    const binding = sqliteBinding();
    if (mode !== 'create') {
      // Nix creates the DB whenever it opens a store; a reading drover command does not (its
      // manual says verify and the queries change nothing), so a mistyped --state-dir is
      // reported instead of leaving a new empty store behind. Both files are written when a
      // DB is made, so a DB without its schema file was never finished: none either.
      const missing = [dbFile, schemaFile].find((f) => !fs.existsSync(f));
      if (missing !== undefined) {
        // A schema file without its DB still says what the state dir holds: a bad one is reported.
        if (missing === dbFile) schemaVersion(schemaFile);
        if (mode === 'existing') {
          throw new NoValidityDbError(`no validity DB at ${dbFile}${missing === dbFile ? '' : ` (${schemaFile} is missing)`}: check --state-dir or DROVER_STATE_DIR`);
        }
        // An empty store, in memory: every path is invalid, as in a store never written to
        // (a build hook asks a fresh remote machine which paths it lacks).
        this.db = new (sqlite())(':memory:', binding);
        this.db.exec(SCHEMA_SQL);
        this.db.exec(DROVER_SCHEMA_SQL);
        this.db.exec('create temp table if not exists Walk (id integer primary key)');
        this.bigLock = undefined;
        this.stmts = this.prepareStatements();
        return;
      }
    } else {
      fs.mkdirSync(dbDir, { recursive: true });
    }
    this.bigLock = lockSync(path.join(dbDir, 'big-lock'), 'shared');
    let version: number;
    try {
      version = schemaVersion(schemaFile);
    } catch (e) {
      this.bigLock.release();
      throw e;
    }
    let db: Database.Database | undefined;
    try {
      // Nix waits an hour on a busy DB; a build farm's registrations can queue that long.
      db = new (sqlite())(dbFile, { timeout: 3_600_000, ...binding });
      this.db = db;
      if (mode === 'create') this.db.pragma('journal_mode = wal');
      this.db.pragma('synchronous = normal');
      this.db.pragma('foreign_keys = 1');
      // Batches of 100k registrations touch more index pages than SQLite's default 2 MB cache holds.
      this.db.pragma('cache_size = -65536');
      if (mode === 'create') {
        // A new DB (no schema file, or version 0, as Nix counts it): made under the shared
        // big-lock, as Nix makes one; every statement is idempotent, so two makers agree.
        if (version === 0) {
          this.db.exec(SCHEMA_SQL);
          writeFileAtomic(schemaFile, `${SCHEMA_VERSION}`);
        }
        this.db.exec(DROVER_SCHEMA_SQL);
      }
      // Closure walks collect ids here (per connection, never written to disk).
      this.db.exec('create temp table if not exists Walk (id integer primary key)');
      this.stmts = this.prepareStatements();
    } catch (e) {
      if (db?.open) db.close();
      this.bigLock.release();
      // SQLite's own words ("file is not a database") do not say which file.
      if ((e as { code?: unknown }).code?.toString().startsWith('SQLITE_')) {
        throw new StoreDbError(`cannot open the validity DB ${dbFile}: ${(e as Error).message}`, 1, { cause: e });
      }
      throw e;
    }
  }

  private prepareStatements() {
    return {
      // Nix's addValidPath or updatePathInfo (which keeps time and deriver), one row at a
      // time for the tail of a batch; whole chunks go through upsertRows.
      upsert: this.db.prepare(`${UPSERT_HEAD} ${UPSERT_ROW} ${UPSERT_TAIL}`),
      addedSince: this.db.prepare('select count(*), max(id) from ValidPaths where id > ?').raw(),
      sequence: this.db.prepare("select seq from sqlite_sequence where name = 'ValidPaths'").pluck(),
      idOf: this.db.prepare('select id from ValidPaths where path = ?').pluck(),
      validAmong: this.db.prepare('select path from ValidPaths where path in (select value from json_each(?))').pluck(),
      info: this.db.prepare('select id, path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca from ValidPaths where path = ?'),
      refs: this.db.prepare('select path from Refs join ValidPaths on reference = id where referrer = ? order by path').pluck(),
      referrers: this.db
        .prepare('select v.path from Refs r join ValidPaths v on r.referrer = v.id where r.reference = (select id from ValidPaths where path = ?) order by v.path')
        .pluck(),
      addRef: this.db.prepare(`${REFS_HEAD} (?, ?)`),
      addOutput: this.db.prepare('insert or replace into DerivationOutputs (drv, id, path) values (?, ?, ?)'),
      outputs: this.db.prepare('select d.id, d.path from DerivationOutputs d join ValidPaths v on d.drv = v.id where v.path = ? order by d.id'),
      derivers: this.db.prepare('select v.path from DerivationOutputs d join ValidPaths v on d.drv = v.id where d.path = ? order by v.path').pluck(),
      allPaths: this.db.prepare('select path from ValidPaths order by path').pluck(),
      allInfo: this.db.prepare('select id, path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca from ValidPaths order by path'),
      allRefs: this.db.prepare('select referrer, reference from Refs').raw(),
      count: this.db.prepare('select count(*) from ValidPaths').pluck(),
      maxId: this.db.prepare('select max(id) from ValidPaths').pluck(),
      infoAmong: this.db.prepare('select id, path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca from ValidPaths where path in (select value from json_each(?))'),
      refsAmong: this.db.prepare('select r.referrer, v.path from Refs r join ValidPaths v on v.id = r.reference where r.referrer in (select value from json_each(?))').raw(),
      rootIds: this.db.prepare('select id, path from ValidPaths where path in (select value from json_each(?))').raw(),
      referenceRows: this.db.prepare('select r.reference, v.path from Refs r join ValidPaths v on v.id = r.reference where r.referrer = ?').raw(),
      referrerRows: this.db.prepare('select r.referrer, v.path from Refs r join ValidPaths v on v.id = r.referrer where r.reference = ?').raw(),
      allIdPaths: this.db.prepare('select id, path from ValidPaths order by path').raw(),
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
      walkPaths: this.db.prepare('select v.id, v.path from temp.Walk w join ValidPaths v on v.id = w.id order by v.path').raw(),
      walkEdges: this.db.prepare('select r.referrer, r.reference from Refs r join temp.Walk w on r.referrer = w.id').raw(),
    };
  }

  close(): void {
    if (this.db.open) this.db.close();
    this.bigLock?.release();
  }

  isValid(p: string): boolean {
    return this.stmts.idOf.get(p) !== undefined;
  }

  queryPathInfo(p: string): ValidPathInfo | undefined {
    const row = this.stmts.info.get(p) as InfoRow | undefined;
    if (!row) return undefined;
    return this.toInfo(row, this.stmts.refs.all(row.id) as string[]);
  }

  /**
   * queryPathInfo of many paths in two queries (rows, then their references), read in one
   * transaction; paths that are not valid are absent. An export of a thousand paths spent
   * ~30 ms on a pair of queries per path.
   */
  pathInfos(paths: readonly string[]): Map<string, ValidPathInfo> {
    return this.readTransaction(() => {
      const rows = this.stmts.infoAmong.all(JSON.stringify(paths)) as InfoRow[];
      const refs = new Map<number, string[]>(rows.map((r) => [r.id, []]));
      for (const [referrer, path] of this.stmts.refsAmong.all(JSON.stringify(rows.map((r) => r.id))) as [number, string][]) refs.get(referrer)!.push(path);
      // Sorted as queryPathInfo's 'order by path' (store paths are ASCII: code units are bytes).
      return new Map(rows.map((r) => [r.path, this.toInfo(r, refs.get(r.id)!.sort())]));
    });
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
      // As Nix reads them: ultimate only when 1, signatures split on spaces into a sorted set.
      ...(row.ultimate === 1 ? { ultimate: true } : {}),
      ...(row.sigs ? { sigs: [...new Set(row.sigs.split(' ').filter((x) => x.length > 0))].sort() } : {}),
    };
  }

  /** Those of `paths` that are valid, in one query (for batches). */
  validAmong(paths: readonly string[]): Set<string> {
    if (paths.length === 0) return new Set();
    // A store smaller than the question (a first bulk registration, most often an empty one):
    // reading its few paths beats looking up each asked one. max(id) bounds the row count.
    const maxId = (this.stmts.maxId.get() as number | null) ?? 0;
    if (maxId === 0) return new Set();
    if (maxId * 4 < paths.length) {
      const asked = new Set(paths);
      const valid = new Set<string>();
      for (const p of this.stmts.allPaths.iterate() as Iterable<string>) if (asked.has(p)) valid.add(p);
      return valid;
    }
    return new Set(this.stmts.validAmong.all(JSON.stringify(paths)) as string[]);
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
   * The closure of `roots` (references, or referrers with `up`) as a graph of its paths and,
   * for each, its references inside the closure; unknown roots are simply absent. Never a
   * query per path of a big closure: a walk of up to PROBE_LIMIT single-row lookups answers
   * small closures at once; a bigger one is walked in memory over one scan of Refs and one
   * of ValidPaths when the store has at most IN_MEMORY_MAX paths, else by one recursive query.
   * `via` forces one of the three (tests compare them).
   */
  closure(roots: readonly string[], opts: { up?: boolean; via?: 'lookups' | 'memory' | 'sql' } = {}): PathGraph {
    const up = !!opts.up;
    return this.readTransaction(() => {
      const small = opts.via === undefined || opts.via === 'lookups' ? this.probeClosure(roots, up, opts.via ? Infinity : PROBE_LIMIT) : undefined;
      if (small) return small;
      const maxId = (this.stmts.maxId.get() as number | null) ?? 0;
      if (opts.via === 'memory' || (opts.via === undefined && maxId <= IN_MEMORY_MAX)) return this.closureInMemory(roots, up, maxId);
      this.stmts.walkClear.run();
      (up ? this.stmts.walkUp : this.stmts.walkDown).run(JSON.stringify(roots));
      return this.walkGraph();
    });
  }

  /** Walks by single-row lookups; undefined once the closure passes PROBE_LIMIT paths. */
  private probeClosure(roots: readonly string[], up: boolean, limit: number): PathGraph | undefined {
    const pathOf = new Map<number, string>();
    const from: number[] = [];
    const to: number[] = [];
    const queue: number[] = [];
    for (const [id, p] of this.stmts.rootIds.all(JSON.stringify(roots)) as [number, string][]) {
      if (!pathOf.has(id)) queue.push(id);
      pathOf.set(id, p);
    }
    const step = up ? this.stmts.referrerRows : this.stmts.referenceRows;
    for (let k = 0; k < queue.length; k++) {
      const id = queue[k]!;
      for (const [other, p] of step.all(id) as [number, string][]) {
        // Every edge between members shows up once, from the side the walk expands.
        if (up) from.push(other), to.push(id);
        else from.push(id), to.push(other);
        if (!pathOf.has(other)) {
          if (pathOf.size >= limit) return undefined;
          pathOf.set(other, p);
          queue.push(other);
        }
      }
    }
    const sorted = [...pathOf].sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    const indexOf = new Map<number, number>();
    sorted.forEach(([id], i) => indexOf.set(id, i));
    return graphFromEdges(
      sorted.map(([, p]) => p),
      from.map((f) => indexOf.get(f)!),
      to.map((t) => indexOf.get(t)!),
      from.length,
    );
  }

  /** Walks over all of Refs in memory (typed arrays indexed by row id). */
  private closureInMemory(roots: readonly string[], up: boolean, maxId: number): PathGraph {
    const refs = this.stmts.allRefs.all() as [number, number][];
    // Compressed adjacency by row id: references of each path, and referrers when walking up.
    const adjacency = (key: 0 | 1) => {
      const start = new Int32Array(maxId + 2);
      for (const e of refs) start[e[key] + 1]!++;
      for (let i = 0; i <= maxId; i++) start[i + 1]! += start[i]!;
      const fill = start.slice(0, maxId + 1);
      const list = new Int32Array(refs.length);
      for (const e of refs) list[fill[e[key]]!++] = e[1 - key]!;
      return { start, list };
    };
    const down = adjacency(0);
    const walk = up ? adjacency(1) : down;
    const seen = new Uint8Array(maxId + 1);
    const queue: number[] = [];
    for (const [id] of this.stmts.rootIds.all(JSON.stringify(roots)) as [number, string][]) {
      if (!seen[id]) (seen[id] = 1), queue.push(id);
    }
    for (let k = 0; k < queue.length; k++) {
      const id = queue[k]!;
      for (let e = walk.start[id]!; e < walk.start[id + 1]!; e++) {
        const o = walk.list[e]!;
        if (!seen[o]) (seen[o] = 1), queue.push(o);
      }
    }
    // Paths in path order straight from the path index; index = rank among members.
    const indexOf = new Int32Array(maxId + 1).fill(-1);
    const paths: string[] = [];
    for (const [id, p] of this.stmts.allIdPaths.iterate() as Iterable<[number, string]>) {
      if (seen[id]) (indexOf[id] = paths.length), paths.push(p);
    }
    const from: number[] = [];
    const to: number[] = [];
    for (const id of queue) {
      for (let e = down.start[id]!; e < down.start[id + 1]!; e++) {
        const o = down.list[e]!;
        if (seen[o]) from.push(indexOf[id]!), to.push(indexOf[o]!);
      }
    }
    return graphFromEdges(paths, from, to, from.length);
  }

  /** The given valid paths with their references among themselves (for topological sorting). */
  subgraph(paths: readonly string[]): PathGraph {
    return this.readTransaction(() => {
      this.stmts.walkClear.run();
      this.stmts.walkSeed.run(JSON.stringify(paths));
      return this.walkGraph();
    });
  }

  private walkGraph(): PathGraph {
    const rows = this.stmts.walkPaths.all() as [number, string][];
    // Row ids are dense in practice: index them with a typed array, not a Map.
    const maxId = (this.stmts.maxId.get() as number | null) ?? 0;
    const indexOf = new Int32Array(maxId + 1).fill(-1);
    const paths: string[] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      indexOf[rows[i]![0]] = i;
      paths[i] = rows[i]![1];
    }
    let from = new Int32Array(Math.max(16, rows.length));
    let to = new Int32Array(from.length);
    let edges = 0;
    for (const [referrer, reference] of this.stmts.walkEdges.iterate() as Iterable<[number, number]>) {
      const j = reference <= maxId ? indexOf[reference]! : -1;
      if (j < 0) continue;
      if (edges === from.length) {
        const grow = (a: Int32Array) => {
          const b = new Int32Array(a.length * 2);
          b.set(a);
          return b;
        };
        from = grow(from);
        to = grow(to);
      }
      from[edges] = indexOf[referrer]!;
      to[edges++] = j;
    }
    this.stmts.walkClear.run();
    return graphFromEdges(paths, from, to, edges);
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
  registerValidPaths(infos: readonly ValidPathInfo[], opts?: RegisterOptions & { beforeCommit?: undefined }): void;
  /**
   * With `beforeCommit`: the rows are written, then `beforeCommit` runs (e.g. the last work on
   * the files, done by other threads meanwhile) while the transaction stays open, and the
   * transaction commits only if it succeeds; otherwise it rolls back and nothing lands.
   */
  registerValidPaths(infos: readonly ValidPathInfo[], opts: RegisterOptions & { beforeCommit: () => Promise<void> }): Promise<void>;
  registerValidPaths(infos: readonly ValidPathInfo[], opts: RegisterOptions & { beforeCommit?: () => Promise<void> } = {}): void | Promise<void> {
    // A later registration of the same path replaces an earlier one, unless the caller says
    // the paths are distinct already (then there is no map of 100k paths to build).
    const batch = opts.unique ? undefined : new Map<string, ValidPathInfo>();
    const checkPaths = !opts.pathsChecked;
    for (const info of infos) {
      if (checkPaths) {
        this.checkPath(info.path, 'path');
        if (info.deriver) this.checkPath(info.deriver, `deriver of '${info.path}'`);
      }
      if (info.narHash.algo !== 'sha256') throw new RegistrationError(`cannot register '${info.path}': its NAR hash must be sha256, not ${info.narHash.algo}`);
      if (!Number.isSafeInteger(info.narSize) || info.narSize < 0) throw new RegistrationError(`cannot register '${info.path}': bad NAR size ${info.narSize}`);
      batch?.set(info.path, info);
    }
    const distinct: readonly ValidPathInfo[] = batch ? [...batch.values()] : infos;
    for (const info of distinct) {
      if (!opts.existenceChecked) {
        try {
          fs.lstatSync(info.path);
        } catch {
          throw new RegistrationError(`cannot register '${info.path}': it does not exist on disk`);
        }
      }
      if (checkPaths) for (const ref of info.references) this.checkPath(ref, `reference of '${info.path}'`);
    }
    // Nix rejects cycles inside a batch (they would make the store unexportable).
    if (!opts.acyclicChecked) {
      const byPath = batch ?? new Map(distinct.map((i) => [i.path, i]));
      checkAcyclic(byPath.keys(), (p) => byPath.get(p)?.references);
    }
    const outputs = new Map<string, Record<string, string>>();
    for (const info of distinct) {
      if (info.derivationOutputs) outputs.set(info.path, info.derivationOutputs);
      else if (info.path.endsWith('.drv') && opts.derivationOutputsOf) outputs.set(info.path, opts.derivationOutputsOf(info.path));
    }
    const now = Math.floor(Date.now() / 1000);
    if (opts.order && (!opts.unique || opts.order.items.length !== distinct.length)) throw new Error('registerValidPaths: an order is only for a batch said to be unique, and must hold all of it');
    if (opts.references && (!opts.unique || opts.references.start.length !== distinct.length + 1)) throw new Error('registerValidPaths: indexed references are only for a batch said to be unique, and must cover all of it');
    const body = () => this.writeRows(opts.order ?? PathOrder.of(distinct), outputs, now, opts.references);
    if (!opts.beforeCommit) {
      this.withoutForeignKeyChecks(() => this.db.transaction(body).immediate());
      return;
    }
    const beforeCommit = opts.beforeCommit;
    return (async () => {
      this.db.pragma('foreign_keys = 0');
      try {
        this.db.exec('begin immediate');
        try {
          body();
          await beforeCommit();
          this.db.exec('commit');
        } catch (e) {
          if (this.db.inTransaction) this.db.exec('rollback');
          throw e;
        }
      } finally {
        this.db.pragma('foreign_keys = 1');
      }
    })();
  }

  /**
   * Runs a registration with SQLite's foreign-key checks off for this connection (the schema,
   * and every other connection, keep them). writeRows takes every id it writes from the DB
   * itself, in the same transaction, so the constraint holds by construction; checking it
   * again cost four fifths of inserting 100k references (a parent lookup per row).
   */
  private withoutForeignKeyChecks(fn: () => void): void {
    // The pragma is a no-op inside a transaction: set it around one, never within.
    this.db.pragma('foreign_keys = 0');
    try {
      fn();
    } finally {
      this.db.pragma('foreign_keys = 1');
    }
  }

  /** The rows of one batch, inside the caller's transaction. */
  private writeRows(order: PathOrder<ValidPathInfo>, outputs: ReadonlyMap<string, Record<string, string>>, now: number, indexed: IndexedReferences | undefined): void {
    const ordered = order.items;
    // A caller that said `unique` and was wrong would get references past the cycle check.
    for (let i = 1; i < ordered.length; i++) {
      if (ordered[i]!.path === ordered[i - 1]!.path) throw new RegistrationError(`cannot register '${ordered[i]!.path}' twice in one batch`);
    }
    // An AUTOINCREMENT id is one more than the largest ever handed out; we hold the write lock.
    const before = Math.max((this.stmts.maxId.get() as number | null) ?? 0, (this.stmts.sequence.get() as number | undefined) ?? 0);
    const rows = this.chunkedInsert('rows', this.stmts.upsert, 6);
    for (const info of ordered) {
      // A size of 0 (only ever given, as in `--hash-given` input) is stored as NULL, as Nix stores it.
      rows.add(info.path, `sha256:${info.narHash.hex}`, info.registrationTime ?? now, info.deriver ?? null, info.narSize || null, info.ca ?? null);
    }
    rows.flush();
    const [added, top] = this.stmts.addedSince.get(before) as [number, number | null];
    // Usually every row is new, and the ids are before+1… in insertion order: no need to read
    // 100k paths back. A re-registered row keeps its id, so then every id is looked up.
    const contiguous = added === ordered.length && top === before + added;
    const known = new Map<string, number>();
    const idOf = (p: string): number | undefined => {
      if (contiguous) {
        const i = order.position(p);
        if (i !== undefined) return before + 1 + i;
      }
      let id = known.get(p);
      if (id === undefined) {
        id = this.stmts.idOf.get(p) as number | undefined;
        if (id !== undefined) known.set(p, id);
      }
      return id;
    };
    // Referrers come in path order, which is id order for new rows: appends to Refs' B-trees.
    const refs = this.chunkedInsert('refs', this.stmts.addRef, 2);
    const noReference = (info: ValidPathInfo, ref: string) => new RegistrationError(`cannot register '${info.path}': its reference '${ref}' is not valid and not in the batch`);
    for (let i = 0; i < ordered.length; i++) {
      const info = ordered[i]!;
      if (info.references.length === 0) continue;
      const id = contiguous ? before + 1 + i : idOf(info.path)!;
      if (contiguous && indexed) {
        // A reference into the batch is a new row whose id is known from its place.
        const b = order.indexAt(i);
        const from = indexed.start[b]!;
        if (indexed.start[b + 1]! - from !== info.references.length) throw new Error(`registerValidPaths: the indexed references of '${info.path}' are not in step with its list`);
        for (let k = 0; k < info.references.length; k++) {
          const t = indexed.target[from + k]!;
          const refId = t >= 0 ? before + 1 + order.placeOf(t) : idOf(info.references[k]!);
          if (refId === undefined) throw noReference(info, info.references[k]!);
          refs.add(id, refId);
        }
        continue;
      }
      for (const ref of info.references) {
        const refId = idOf(ref);
        if (refId === undefined) throw noReference(info, ref);
        refs.add(id, refId);
      }
    }
    refs.flush();
    for (const [drv, outs] of outputs) {
      const id = idOf(drv)!;
      for (const name of Object.keys(outs)) this.stmts.addOutput.run(id, name, outs[name]);
    }
  }

  private multiRowStmts?: { rows: Database.Statement; refs: Database.Statement };
  /**
   * Buffers rows of `width` values and inserts them ROWS_PER_INSERT at a time (the tail row
   * by row through `single`): one call into SQLite per chunk, not per row.
   */
  private chunkedInsert(which: 'rows' | 'refs', single: Database.Statement, width: 2 | 6): { add(a: unknown, b: unknown, c?: unknown, d?: unknown, e?: unknown, f?: unknown): void; flush(): void } {
    this.multiRowStmts ??= {
      rows: this.db.prepare(`${UPSERT_HEAD} ${new Array(ROWS_PER_INSERT).fill(UPSERT_ROW).join(', ')} ${UPSERT_TAIL}`),
      refs: this.db.prepare(`${REFS_HEAD} ${new Array(ROWS_PER_INSERT).fill('(?, ?)').join(', ')}`),
    };
    const multi = this.multiRowStmts[which];
    const buf: unknown[] = new Array(ROWS_PER_INSERT * width);
    let n = 0;
    return {
      // Fixed arity, not rest parameters, which made an array per row (200k for 100k paths).
      add(a: unknown, b: unknown, c?: unknown, d?: unknown, e?: unknown, f?: unknown) {
        buf[n++] = a;
        buf[n++] = b;
        if (width === 6) {
          buf[n++] = c;
          buf[n++] = d;
          buf[n++] = e;
          buf[n++] = f;
        }
        if (n === buf.length) {
          multi.run(buf);
          n = 0;
        }
      },
      flush() {
        for (let i = 0; i < n; i += width) single.run(buf.slice(i, i + width));
        n = 0;
      },
    };
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
  ultimate: number | null;
  sigs: string | null;
  ca: string | null;
}

/**
 * The version in db/schema: SCHEMA_VERSION, or 0 when the file is absent (a new DB, as Nix
 * counts it). Anything but a number is refused as Nix refuses it, since taking it for 0 would
 * run the create script over a DB of unknown shape, and so is any other version.
 */
function schemaVersion(schemaFile: string): number {
  const version = readSchemaVersion(schemaFile);
  const dbDir = path.dirname(schemaFile);
  if (version > SCHEMA_VERSION) {
    throw new StoreDbError(`the DB in ${dbDir} has schema version ${version}, newer than the ${SCHEMA_VERSION} drover knows`);
  }
  // Nix upgrades an old schema under the exclusive big-lock; drover never had another schema
  // and holds the lock shared, so it leaves the upgrade to Nix rather than run a create
  // script over tables of another shape.
  if (version > 0 && version < SCHEMA_VERSION) {
    throw new StoreDbError(
      `the DB in ${dbDir} has schema version ${version}, older than the ${SCHEMA_VERSION} drover knows; drover does not upgrade Nix's old schemas: let Nix 2.8 upgrade it first (any nix-store command run by the store's owner, e.g. nix-store --verify)`,
    );
  }
  return version;
}

function readSchemaVersion(schemaFile: string): number {
  let text: string;
  try {
    text = fs.readFileSync(schemaFile, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw new StoreDbError(`cannot read '${schemaFile}': ${(e as Error).message}`, 1, { cause: e });
  }
  // Nix writes the bare number; a newline added by hand is forgiven.
  const t = text.trim();
  if (!/^[0-9]{1,9}$/.test(t)) {
    const shown = JSON.stringify(t.length > 40 ? `${t.slice(0, 40)}…` : t);
    throw new StoreDbError(`'${schemaFile}' is corrupt: it holds ${shown}, not a schema version number`);
  }
  return Number(t);
}

/**
 * Replaces `file` whole or not at all: write a temp sibling, fsync, rename. Temp siblings
 * that writers killed mid-write left (named after their dead pids) are removed first.
 */
export function writeFileAtomic(file: string, data: string | Buffer): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const prefix = `${path.basename(file)}.tmp-`;
  for (const name of fs.readdirSync(path.dirname(file))) {
    const pid = name.startsWith(prefix) ? name.slice(prefix.length) : '';
    if (/^\d+$/.test(pid) && !pidAlive(Number(pid))) fs.rmSync(path.join(path.dirname(file), name), { force: true });
  }
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

