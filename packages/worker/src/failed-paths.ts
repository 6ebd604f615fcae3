// --cache-failures: the scheduler's view of the store's FailedPaths table.
import { addFailedPath, isFailedPath, type Store } from '@drover/store';

/** The outputs among `paths` whose builds failed permanently before. */
export function failedSubset(store: Store, paths: readonly string[]): Set<string> {
  return new Set(paths.filter((p) => isFailedPath(store.db, p)));
}

export function recordFailedPaths(store: Store, paths: readonly string[]): void {
  const now = Math.floor(Date.now() / 1000);
  for (const p of paths) addFailedPath(store.db, p, now);
}
