// Temporary GC roots (`STATE/temproots/PID`), kept as Nix 2.8 keeps them: the paths a process
// is building or using, which a concurrent `nix-store --gc` must not delete.
//
// The protocol, as Nix's collector reads it: a process's roots file is named after its pid and
// locked exclusively for the process's life (a collector that can lock it knows the owner is
// dead, and deletes it); it holds store paths, each ended by a NUL; the collector keeps every
// path whose hash part is among them (a build's `PATH.drv.chroot`-style scratch names too),
// and their closures. Paths are appended under `STATE/gc.lock` held shared, so none arrives
// between a collector's reading of the roots and its deleting: a collection that is running
// is waited for (Nix 2.8 would tell it through its GC socket instead, which drover does not
// speak).
import fs from 'node:fs';
import path from 'node:path';
import { lockSync, tryLock, type FileLock } from './locks.js';

/** This process's roots file per state dir: its lock (held until exit) and a descriptor to append with. */
const files = new Map<string, { lock: FileLock; fd: number; file: string }>();

/** Nix's global GC lock: a collector holds it exclusively while it reads roots and deletes. */
export function gcLockFile(stateDir: string): string {
  return path.join(stateDir, 'gc.lock');
}

/** Adds `paths` (store paths) to this process's temporary roots in `stateDir`. */
export function addTempRoots(stateDir: string, paths: Iterable<string>): void {
  let text = '';
  for (const p of paths) text += `${p}\0`;
  if (text === '') return;
  const f = rootsFile(stateDir);
  const gcLock = gcLockFile(stateDir);
  const gc = tryLock(gcLock, 'shared') ?? lockSync(gcLock, 'shared');
  try {
    fs.writeSync(f.fd, text);
  } finally {
    gc.release();
  }
}

function rootsFile(stateDir: string): { lock: FileLock; fd: number; file: string } {
  const known = files.get(stateDir);
  if (known) return known;
  const dir = path.join(stateDir, 'temproots');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, String(process.pid));
  // Only a dead process with this pid can have left one: its roots are nobody's.
  fs.rmSync(file, { force: true });
  // A collector that deletes the new file before it is locked is noticed by the lock's inode
  // check, and a fresh file is made.
  const lock = lockSync(file, 'exclusive');
  const fd = fs.openSync(file, 'a');
  const f = { lock, fd, file };
  files.set(stateDir, f);
  if (files.size === 1) process.once('exit', removeRootsFiles);
  return f;
}

/** At exit, as Nix's removeTempRoots: the roots are let go with the process. */
function removeRootsFiles(): void {
  for (const f of files.values()) {
    try {
      fs.unlinkSync(f.file);
    } catch {
      /* a collector removed it: nothing to do */
    }
    fs.closeSync(f.fd);
    f.lock.release();
  }
  files.clear();
}
