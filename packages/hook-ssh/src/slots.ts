// Build slots per machine: flock'd files under STATE/current-load/, freed by the kernel when the holder dies.
import fs from 'node:fs';
import path from 'node:path';
import { lock, tryLock, type FileLock } from '@drover/store';
import type { Machine } from './machines.js';

export interface SlotHolder {
  pid: number;
  drv: string;
  since: number;
}

/** A held slot; the info file beside it says who holds it (for `status`), the lock says whether. */
export class Slot {
  constructor(
    readonly machine: Machine,
    readonly index: number,
    private readonly lockHandle: FileLock,
    private readonly infoFile: string,
  ) {}
  setHolder(h: SlotHolder): void {
    try {
      fs.writeFileSync(this.infoFile, JSON.stringify(h) + '\n');
    } catch {
      /* only informative */
    }
  }
  release(): void {
    if (!this.lockHandle.held) return;
    fs.rmSync(this.infoFile, { force: true });
    this.lockHandle.release();
  }
}

export class Slots {
  readonly dir: string;
  constructor(stateDir: string) {
    this.dir = path.join(stateDir, 'current-load');
  }

  /**
   * Slot files are named by the machine's id, which covers its URI with the options: two
   * lines for one host (`?engine=nix` and the default engine, say) are two machines, each
   * with its own MAX_JOBS slots, as Nix names its slot files by the store URI with its
   * options. Sharing one set instead would make each line count the other's builds against
   * its own limit (a line with MAX_JOBS 1 blocked by the other line's first build) or leave
   * slots one line may never use. The parser refuses the same URI on two lines, so a set of
   * slots never belongs to two MAX_JOBS.
   */
  private file(m: Machine, i: number): string {
    return path.join(this.dir, `${m.id}-${i}`);
  }

  /**
   * Runs `fn` holding the choice lock, so that reading every machine's load and taking a
   * slot is one step for all hook processes (two hooks never see the same free slot as the
   * best choice and then both pile onto one machine).
   */
  async choosing<T>(fn: () => T | Promise<T>): Promise<T> {
    const l = await lock(path.join(this.dir, 'choice.lock'), { timeoutSeconds: 60 });
    try {
      return await fn();
    } finally {
      l.release();
    }
  }

  /** Which slots of a machine are held right now (by anyone, this process included). */
  busy(m: Machine): number[] {
    const held: number[] = [];
    for (let i = 0; i < m.maxJobs; i++) {
      const l = tryLock(this.file(m, i));
      if (l) l.release();
      else held.push(i);
    }
    return held;
  }

  load(m: Machine): number {
    return this.busy(m).length;
  }

  /** Takes the first free slot of the machine, or undefined when all maxJobs are held. */
  tryAcquire(m: Machine): Slot | undefined {
    for (let i = 0; i < m.maxJobs; i++) {
      const f = this.file(m, i);
      const l = tryLock(f);
      if (l) return new Slot(m, i, l, `${f}.info`);
    }
    return undefined;
  }

  /** Who holds slot `i`, as far as its info file says (it may lag the lock by a moment). */
  holder(m: Machine, i: number): SlotHolder | undefined {
    try {
      return JSON.parse(fs.readFileSync(`${this.file(m, i)}.info`, 'utf8')) as SlotHolder;
    } catch {
      return undefined;
    }
  }
}
