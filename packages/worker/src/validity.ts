// Batched reads of the validity DB: which paths are valid, and closures, one query each.
import { refsOf, type Store } from '@drover/store';

/** The subset of `paths` that is valid. */
export function validSubset(store: Store, paths: readonly string[]): Set<string> {
  if (paths.length === 0) return new Set();
  return store.db.validAmong(paths);
}

/** The closure of `roots` in the DB: every path in it with its references. */
export function dbClosure(store: Store, roots: readonly string[]): Map<string, string[]> {
  const g = store.db.closure(roots);
  const out = new Map<string, string[]>();
  g.paths.forEach((p, i) => out.set(p, Array.from(refsOf(g, i), (j) => g.paths[j]!)));
  return out;
}
