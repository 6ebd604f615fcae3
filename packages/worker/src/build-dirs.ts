// Build dirs: a fresh, empty temp dir for every build, reused once emptied.
//
// Creating a directory is the most expensive file-system call on some disks (about 1 ms
// here, more than spawning a trivial builder); an emptied dir with reset permissions is
// indistinguishable from a new one for the builder, so finished builds hand theirs back.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { removeTree } from '@drover/store';

export class BuildDirs {
  private readonly free: string[] = [];
  private readonly all = new Set<string>();

  constructor(private readonly root: string = os.tmpdir()) {}

  take(): string {
    const d = this.free.pop();
    if (d !== undefined) return d;
    const made = fs.mkdtempSync(path.join(this.root, 'drover-build-'));
    this.all.add(made);
    return made;
  }

  /** Empties `dir` and keeps it for the next build; a dir that cannot be emptied is dropped. */
  give(dir: string): void {
    try {
      fs.chmodSync(dir, 0o700);
      for (const e of fs.readdirSync(dir)) removeTree(path.join(dir, e));
      this.free.push(dir);
    } catch {
      this.drop(dir);
    }
  }

  /** Leaves `dir` where it is (--keep-failed) and forgets it. */
  keep(dir: string): void {
    this.all.delete(dir);
  }

  drop(dir: string): void {
    this.all.delete(dir);
    try {
      removeTree(dir);
    } catch {
      /* best effort */
    }
  }

  /** Removes every dir still owned (at the end of a run). */
  close(): void {
    for (const d of this.all) this.drop(d);
    this.free.length = 0;
  }
}
