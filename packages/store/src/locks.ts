// Every lock drover takes (the DB's big-lock, output locks, hook slots): kernel flock(2).
//
// Why flock through fs-ext: Nix takes the very same flock(2) locks on db/big-lock and on
// `PATH.lock`, so only flock makes drover and Nix exclude each other on a shared store; and
// the kernel drops a flock when its holder dies however it dies (kill -9 included), so no
// lock can go stale. Node has no flock of its own; pid files can be recycled and need guessing.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { DroverError } from './errors.js';

// Loaded on first use: commands that take no lock should not pay for a native module.
type FsExt = { flockSync(fd: number, flags: 'sh' | 'ex' | 'shnb' | 'exnb' | 'un'): void };
let fsExtModule: FsExt | undefined;
const fsExt = {
  flockSync(fd: number, flags: 'sh' | 'ex' | 'shnb' | 'exnb' | 'un'): void {
    fsExtModule ??= createRequire(import.meta.url)('fs-ext') as FsExt;
    fsExtModule.flockSync(fd, flags);
  },
};

export class LockTimeoutError extends DroverError {
  constructor(file: string, seconds: number) {
    super(`timed out after ${seconds}s waiting for the lock '${file}'`, 1);
  }
}

export type LockMode = 'shared' | 'exclusive';

/** A held lock; `release` is idempotent. The kernel also releases it when the process dies. */
export class FileLock {
  private fd: number | undefined;
  constructor(
    readonly file: string,
    fd: number,
  ) {
    this.fd = fd;
  }
  get held(): boolean {
    return this.fd !== undefined;
  }
  /**
   * Removes the lock file first when asked (Nix deletes output locks once paths are valid),
   * and then marks it stale as Nix's deleteLockFile does: a waiter that opened it before the
   * unlink gets the lock on a file nobody else can see, and Nix's lockPaths tells that case by
   * the file's size (not 0: retry with a fresh file), drover's by comparing inodes.
   */
  release(opts: { unlink?: boolean } = {}): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      if (opts.unlink && unlinked(this.file)) {
        // Best effort, as Nix's: a full disk must not keep the lock (or hide the caller's error).
        try {
          fs.writeSync(fd, 'd');
        } catch {
          /* unmarked: a drover waiter still sees the inode is gone; a Nix one may not, as when Nix's own write fails */
        }
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * release on the thread pool: an import lets go of a thousand lock files after its commit,
   * three system calls each. The lock counts as released at once (`held` is false).
   */
  async releaseAsync(opts: { unlink?: boolean } = {}): Promise<void> {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      if (opts.unlink && (await unlinkedAsync(this.file))) {
        await new Promise<void>((resolve) => fs.write(fd, 'd', () => resolve()));
      }
    } finally {
      await new Promise<void>((resolve, reject) => fs.close(fd, (e) => (e ? reject(e) : resolve())));
    }
  }
}

async function unlinkedAsync(file: string): Promise<boolean> {
  try {
    await fs.promises.unlink(file);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/**
 * Removes a lock file; false if it could not be (then it must not be marked stale: a linked
 * lock file with a 'd' in it would send every later Nix locker round its retry loop forever).
 */
function unlinked(file: string): boolean {
  try {
    fs.unlinkSync(file);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

const LOCK_FLAGS = fs.constants.O_RDWR | fs.constants.O_CREAT;

/**
 * openLockFile on the thread pool: creating a file costs tens of microseconds on ext4 (more
 * after many deletions), which an import of a thousand paths should not spend on its main thread.
 */
async function openLockFileAsync(file: string): Promise<number> {
  const open = () => new Promise<number>((resolve, reject) => fs.open(file, LOCK_FLAGS, 0o600, (e, fd) => (e ? reject(e) : resolve(fd))));
  try {
    return await open();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  return open();
}

function openLockFile(file: string): number {
  // The directory is there nearly always (an import locks a thousand paths in the store dir):
  // make it only when the open says it is missing.
  try {
    return fs.openSync(file, LOCK_FLAGS, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  return fs.openSync(file, LOCK_FLAGS, 0o600);
}

function tryFlock(fd: number, mode: LockMode): boolean {
  try {
    fsExt.flockSync(fd, mode === 'shared' ? 'shnb' : 'exnb');
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return false;
    throw e;
  }
}

/**
 * Takes the lock if it is free right now, else returns undefined. A lock file that was
 * unlinked by its previous holder between our open and our flock is retried, so a lock
 * is never granted on a file nobody else can see.
 */
export function tryLock(file: string, mode: LockMode = 'exclusive'): FileLock | undefined {
  for (;;) {
    const l = lockOpened(file, openLockFile(file), mode);
    if (l !== 'stale') return l;
  }
}

/** tryLock with the file opened on the thread pool (openLockFileAsync). */
export async function tryLockAsync(file: string, mode: LockMode = 'exclusive'): Promise<FileLock | undefined> {
  for (;;) {
    const l = lockOpened(file, await openLockFileAsync(file), mode);
    if (l !== 'stale') return l;
  }
}

/** Locks an open lock file without waiting: the lock, undefined if it is held, 'stale' if the file was unlinked meanwhile. */
function lockOpened(file: string, fd: number, mode: LockMode): FileLock | undefined | 'stale' {
  let got: boolean;
  try {
    got = tryFlock(fd, mode);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  if (got && sameFile(fd, file)) return new FileLock(file, fd);
  fs.closeSync(fd);
  return got ? 'stale' : undefined;
}

function sameFile(fd: number, file: string): boolean {
  try {
    const a = fs.fstatSync(fd);
    const b = fs.statSync(file);
    return a.ino === b.ino && a.dev === b.dev;
  } catch {
    return false;
  }
}

/**
 * Waits for the lock, polling with growing sleeps (flock has no timeout, and a blocking
 * flock would stall Node's event loop). `timeoutSeconds` undefined waits forever.
 */
export async function lock(
  file: string,
  opts: { mode?: LockMode; timeoutSeconds?: number; onWait?: () => void } = {},
): Promise<FileLock> {
  const start = Date.now();
  let delay = 5;
  let told = false;
  for (;;) {
    const l = tryLock(file, opts.mode ?? 'exclusive');
    if (l) return l;
    if (!told) {
      opts.onWait?.();
      told = true;
    }
    if (opts.timeoutSeconds !== undefined && Date.now() - start >= opts.timeoutSeconds * 1000) {
      throw new LockTimeoutError(file, opts.timeoutSeconds);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 200);
  }
}

/** Blocking variant for synchronous code paths (short critical sections only). */
export function lockSync(file: string, mode: LockMode = 'exclusive'): FileLock {
  for (;;) {
    const fd = openLockFile(file);
    fsExt.flockSync(fd, mode === 'shared' ? 'sh' : 'ex');
    if (sameFile(fd, file)) return new FileLock(file, fd);
    fs.closeSync(fd);
  }
}
