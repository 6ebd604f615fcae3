// The validity DB: Nix 2.8's SQLite schema, and the one place that registers paths.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { StoreDbError } from './errors.js';
import { parseHash, type Hash } from './hash.js';
import { lockSync, type FileLock } from './locks.js';

export const SCHEMA_VERSION = 10;
const SCHEMA_SQL = fs.readFileSync(new URL('../sql/schema.sql', import.meta.url), 'utf8');

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

export class StoreDb {
  readonly db: Database.Database;
  private readonly bigLock: FileLock;
  private readonly stmts;

  /**
   * Opens (creating if needed) `STATE/db/db.sqlite`, holding db/big-lock shared for the
   * lifetime as Nix does, so a schema change by either side excludes the other.
   */
  constructor(readonly stateDir: string) {
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
    this.db = new Database(path.join(dbDir, 'db.sqlite'), { timeout: 3_600_000 });
    this.db.pragma('journal_mode = wal');
    this.db.pragma('synchronous = normal');
    this.db.pragma('foreign_keys = 1');
    if (version < SCHEMA_VERSION) {
      this.db.exec(SCHEMA_SQL);
      writeFileAtomic(schemaFile, `${SCHEMA_VERSION}`);
    }
    this.stmts = {
      insert: this.db.prepare(
        'insert into ValidPaths (path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca) values (?, ?, ?, ?, ?, null, null, ?)',
      ),
      update: this.db.prepare('update ValidPaths set narSize = ?, hash = ?, ultimate = null, sigs = null, ca = ? where path = ?'),
      idOf: this.db.prepare('select id from ValidPaths where path = ?').pluck(),
      info: this.db.prepare('select id, path, hash, registrationTime, deriver, narSize, ca from ValidPaths where path = ?'),
      refs: this.db.prepare('select path from Refs join ValidPaths on reference = id where referrer = ? order by path').pluck(),
      addRef: this.db.prepare('insert or replace into Refs (referrer, reference) values (?, ?)'),
      addOutput: this.db.prepare('insert or replace into DerivationOutputs (drv, id, path) values (?, ?, ?)'),
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
    const row = this.stmts.info.get(p) as
      | { id: number; path: string; hash: string; registrationTime: number; deriver: string | null; narSize: number | null; ca: string | null }
      | undefined;
    if (!row) return undefined;
    return {
      path: row.path,
      narHash: parseHash(row.hash),
      narSize: row.narSize ?? 0,
      references: this.stmts.refs.all(row.id) as string[],
      deriver: row.deriver ?? undefined,
      ca: row.ca ?? undefined,
      registrationTime: row.registrationTime,
    };
  }

  /**
   * Registers a batch in one transaction: all land or none do. Every reference must be
   * valid already or in the batch, and every path must exist on disk (invariants 1 and 2).
   * Re-registering a valid path updates its hash and size, as Nix does.
   */
  registerValidPaths(infos: ValidPathInfo[]): void {
    for (const info of infos) {
      try {
        fs.lstatSync(info.path);
      } catch {
        throw new StoreDbError(`cannot register '${info.path}': it does not exist on disk`);
      }
    }
    const now = Math.floor(Date.now() / 1000);
    const run = this.db.transaction(() => {
      const ids = new Map<string, number>();
      for (const info of infos) {
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
      for (const info of infos) {
        const id = ids.get(info.path)!;
        for (const ref of info.references) {
          const refId = ids.get(ref) ?? (this.stmts.idOf.get(ref) as number | undefined);
          if (refId === undefined) throw new StoreDbError(`cannot register '${info.path}': its reference '${ref}' is not valid`);
          this.stmts.addRef.run(id, refId);
        }
        for (const [name, out] of Object.entries(info.derivationOutputs ?? {})) this.stmts.addOutput.run(id, name, out);
      }
    });
    run.immediate();
  }
}

/** Replaces `file` whole or not at all: write a temp sibling, fsync, rename. */
export function writeFileAtomic(file: string, data: string | Buffer): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}
