// Batched validity reads: one query for a whole set of paths, however many.
import type { Store } from '@drover/store';

type Statement = ReturnType<Store['db']['db']['prepare']>;
const stmts = new WeakMap<object, Statement>();

/** The subset of `paths` that is valid, from one query (json_each keeps it one statement). */
export function validSubset(store: Store, paths: readonly string[]): Set<string> {
  if (paths.length === 0) return new Set();
  const db = store.db.db;
  let st = stmts.get(db);
  if (!st) {
    st = db.prepare('select path from ValidPaths where path in (select value from json_each(?))').pluck();
    stmts.set(db, st);
  }
  return new Set(st.all(JSON.stringify(paths)) as string[]);
}
