// Paths whose build failed permanently: drover's FailedPaths table (Nix 2.8 ignores it).
import type { StoreDb } from './db.js';

export interface FailedPath {
  path: string;
  /** Seconds since the epoch when the failure was recorded. */
  time: number;
}

/** Records a permanent build failure of `path` (an output path), replacing an older record. */
export function addFailedPath(db: StoreDb, path: string, time = Math.floor(Date.now() / 1000)): void {
  db.db.prepare('insert or replace into FailedPaths (path, time) values (?, ?)').run(path, time);
}

export function isFailedPath(db: StoreDb, path: string): boolean {
  return db.db.prepare('select 1 from FailedPaths where path = ?').get(path) !== undefined;
}

export function listFailedPaths(db: StoreDb): FailedPath[] {
  // A DB opened only to read, that drover never wrote to (Nix made it), has no such table: none failed.
  if (db.db.prepare("select 1 from sqlite_master where type = 'table' and name = 'FailedPaths'").get() === undefined) return [];
  return db.db.prepare('select path, time from FailedPaths order by path').all() as FailedPath[];
}

/** Forgets the given failures (all of them when `paths` is undefined); returns how many went. */
export function clearFailedPaths(db: StoreDb, paths?: readonly string[]): number {
  if (paths === undefined) return db.db.prepare('delete from FailedPaths').run().changes;
  const del = db.db.prepare('delete from FailedPaths where path = ?');
  return db.db.transaction(() => paths.reduce((n, p) => n + del.run(p).changes, 0)).immediate();
}
