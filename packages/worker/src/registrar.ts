// Registers finished outputs in batches: one file-system sync and one transaction for all
// builds that ended within a few milliseconds of each other.
//
// Why batches: invariant 1 wants contents on disk before a path is valid, and a sync per
// build would cost more than the build. Dependents need not wait: their inputs are complete
// on disk already, and a batch lands whole and in order, so nothing is ever valid before
// what it refers to. A run that is killed leaves the unregistered outputs invalid; the next
// run deletes and rebuilds them. Output locks are released only once their paths are valid,
// so another drover-build waiting for them then finds them valid.
import { syncFileSystem, type FileLock, type Store, type ValidPathInfo } from '@drover/store';

interface Entry {
  infos: ValidPathInfo[];
  locks: FileLock[];
}

export class Registrar {
  private queue: Entry[] = [];
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The first failure; every later flush rethrows it. */
  private error: unknown;

  constructor(
    private readonly store: Store,
    private readonly opts: { delayMs: number; onError: (e: unknown) => void },
  ) {}

  get pending(): number {
    return this.queue.length;
  }

  add(infos: ValidPathInfo[], locks: FileLock[]): void {
    this.queue.push({ infos, locks });
    if (!this.timer && !this.running) this.timer = setTimeout(() => void this.kick(), this.opts.delayMs);
  }

  /** Resolves when everything added so far is valid (or rejects with why it is not). */
  async flush(): Promise<void> {
    while (this.queue.length > 0 || this.running) {
      if (this.running) await this.running.catch(() => {});
      else await this.kick();
      if (this.error) throw this.error;
    }
    if (this.error) throw this.error;
  }

  private kick(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.running) return this.running;
    if (this.queue.length === 0 || this.error) return Promise.resolve();
    const batch = this.queue.splice(0);
    this.running = (async () => {
      try {
        // One syncfs(2), on a libuv thread (DROVER_NO_SYNC=1 skips it, for throwaway stores).
        await syncFileSystem(this.store.storeDir);
        this.store.db.registerValidPaths(batch.flatMap((e) => e.infos));
        for (const e of batch) for (const l of e.locks) l.release({ unlink: true });
      } catch (e) {
        this.error ??= e;
        for (const b of batch) for (const l of b.locks) l.release();
        this.opts.onError(e);
      }
    })().finally(() => {
      this.running = undefined;
      if (this.queue.length > 0 && !this.error && !this.timer) this.timer = setTimeout(() => void this.kick(), this.opts.delayMs);
    });
    return this.running;
  }
}
