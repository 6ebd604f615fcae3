// Output locks of drover-build: one flock(2) per output path while it is being built.
//
// They are not the store's `OUTPATH.lock` (which `drover-store import`, and so a build hook
// registering the outputs it copied back, takes while the scheduler still holds its lock:
// sharing one lock would deadlock). They live in a runtime dir on tmpfs when there is one
// (creating a file on the store's disk can cost a millisecond, more than a trivial build's
// other work), named after the state dir's device and inode so that two stores mounted at
// the same path (a "remote" store in a mount namespace) never share locks.
// A Nix build holding `OUTPATH.lock` is waited for, not joined; and a local build holds
// `OUTPATH.lock` too, from before it looks at the output until the output is valid, or
// `nix-store -r` on the same store would take it meanwhile, delete the output the builder is
// writing and build the same derivation at the same time. A hook build cannot hold it (the
// hook's import takes it), so Nix can still race one of those.
import fs from 'node:fs';
import path from 'node:path';
import { tryLock, type FileLock } from '@drover/store';

export function buildLockDir(stateDir: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env.DROVER_LOCK_DIR) return env.DROVER_LOCK_DIR;
  fs.mkdirSync(stateDir, { recursive: true });
  const st = fs.statSync(stateDir);
  try {
    if (fs.statSync('/dev/shm').isDirectory()) {
      return `/dev/shm/drover-build-locks-${process.getuid?.() ?? 0}-${st.dev}-${st.ino}`;
    }
  } catch {
    /* no tmpfs */
  }
  return path.join(stateDir, 'build-locks');
}

export class BuildLocks {
  private made = false;

  constructor(readonly dir: string) {}

  fileFor(outPath: string): string {
    return path.join(this.dir, `${path.basename(outPath)}.lock`);
  }

  /**
   * Takes the locks of all `outputs` now, or none: returns the first busy lock file (ours
   * or Nix's) so the caller can wait for it. With `holdNix` (a local build) Nix's
   * `OUTPATH.lock` of each output is taken and kept as well; without (the hook may take the
   * build, and its import takes those locks) a Nix lock is only checked for being free.
   */
  tryLockAll(outputs: readonly string[], holdNix: boolean): { locks: FileLock[] } | { busy: string } {
    if (!this.made) {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      this.made = true;
    }
    const taken: FileLock[] = [];
    for (const p of outputs) {
      const file = this.fileFor(p);
      const l = tryLock(file);
      if (!l) return this.busy(taken, file);
      taken.push(l);
    }
    const nix = this.tryLockNix(outputs, holdNix);
    if ('busy' in nix) return this.busy(taken, nix.busy);
    return { locks: [...taken, ...nix.locks] };
  }

  /**
   * Nix's `OUTPATH.lock` of every output: taken and returned (`hold`), or only checked for
   * being free, without creating a lock file in the store where there is none. All or none.
   */
  tryLockNix(outputs: readonly string[], hold: boolean): { locks: FileLock[] } | { busy: string } {
    const taken: FileLock[] = [];
    for (const p of outputs) {
      const nixLock = `${p}.lock`;
      if (!hold && !fs.existsSync(nixLock)) continue;
      const l = tryLock(nixLock);
      if (!l) return this.busy(taken, nixLock);
      if (hold) taken.push(l);
      else l.release();
    }
    return { locks: taken };
  }

  /**
   * Removes the lock dir when no lock is left in it. Safe while others run: taking a lock
   * creates its directory again.
   */
  tidy(): void {
    try {
      fs.rmdirSync(this.dir);
    } catch {
      /* not empty, or gone */
    }
  }

  private busy(taken: FileLock[], file: string): { busy: string } {
    for (const t of taken) t.release({ unlink: true });
    return { busy: file };
  }
}

/** The fd of a held lock, for a builder to inherit (so the lock outlives a killed scheduler). */
export function lockFd(l: FileLock): number | undefined {
  // FileLock keeps its fd private; inheriting it is the one reason to look.
  const fd = (l as unknown as { fd?: number }).fd;
  return typeof fd === 'number' ? fd : undefined;
}
