// Failure memory: machines that refused or dropped a connection, shared by all hook processes via STATE.
import fs from 'node:fs';
import path from 'node:path';
import { lockSync, writeFileAtomic } from '@drover/store';
import type { Machine } from './machines.js';

export interface HealthRecord {
  /** Failures in a row since the last success. */
  failures: number;
  /** Epoch ms of the last failure. */
  lastFailure: number;
  /** Epoch ms before which hooks skip the machine. */
  retryAt: number;
  /** What failed, in ssh's own words. */
  lastError: string;
}

export interface Backoff {
  base: number;
  max: number;
}

/**
 * Back-off doubles per failure in a row (base, 2·base, 4·base, … up to max seconds), so a
 * dead machine costs one connect timeout per back-off period instead of one per derivation.
 */
export function backoffSeconds(failures: number, b: Backoff): number {
  return Math.min(b.max, b.base * 2 ** Math.max(0, Math.min(failures - 1, 30)));
}

export class MachineHealth {
  readonly dir: string;
  constructor(
    stateDir: string,
    private readonly backoff: Backoff,
    private readonly now: () => number = Date.now,
  ) {
    this.dir = path.join(stateDir, 'hook-ssh', 'health');
  }

  private file(m: Machine): string {
    return path.join(this.dir, `${m.id}.json`);
  }

  get(m: Machine): HealthRecord | undefined {
    try {
      const r = JSON.parse(fs.readFileSync(this.file(m), 'utf8')) as Partial<HealthRecord> | null;
      // A record someone edited or cut short is no record: status would print "NaNh ago: undefined".
      if (!r || typeof r !== 'object') return undefined;
      const { failures, lastFailure, retryAt, lastError } = r;
      if (![failures, lastFailure, retryAt].every((n) => typeof n === 'number' && Number.isFinite(n)) || typeof lastError !== 'string') return undefined;
      return { failures: failures!, lastFailure: lastFailure!, retryAt: retryAt!, lastError };
    } catch {
      return undefined;
    }
  }

  /** The record when the machine is in back-off now, else undefined. */
  backingOff(m: Machine): HealthRecord | undefined {
    const r = this.get(m);
    return r && this.now() < r.retryAt ? r : undefined;
  }

  private probeFile(m: Machine): string {
    return path.join(this.dir, `${m.id}.probed`);
  }

  /**
   * Whether a probe through the shared connection `controlPath` passed less than `maxAgeMs`
   * ago and that connection is still up (its socket exists: ssh removes it when the master
   * ends, as it does when the link breaks). Then the next hook may accept without asking.
   */
  probedRecently(m: Machine, controlPath: string, maxAgeMs: number): boolean {
    try {
      const r = JSON.parse(fs.readFileSync(this.probeFile(m), 'utf8')) as { controlPath: string; time: number };
      const age = this.now() - r.time;
      return r.controlPath === controlPath && age >= 0 && age < maxAgeMs && fs.statSync(controlPath).isSocket();
    } catch {
      return false;
    }
  }

  recordProbe(m: Machine, controlPath: string): void {
    fs.mkdirSync(this.dir, { recursive: true });
    writeFileAtomic(this.probeFile(m), JSON.stringify({ controlPath, time: this.now() }) + '\n');
  }

  recordFailure(m: Machine, error: string): HealthRecord {
    fs.rmSync(this.probeFile(m), { force: true });
    return this.update(m, (prev) => {
      const failures = (prev?.failures ?? 0) + 1;
      const t = this.now();
      return { failures, lastFailure: t, retryAt: t + backoffSeconds(failures, this.backoff) * 1000, lastError: error };
    });
  }

  recordSuccess(m: Machine): void {
    if (!fs.existsSync(this.file(m))) return;
    this.update(m, () => undefined);
  }

  /** Read-modify-write under a per-machine lock, so concurrent hooks count every failure. */
  private update(m: Machine, fn: (prev: HealthRecord | undefined) => HealthRecord | undefined): HealthRecord {
    fs.mkdirSync(this.dir, { recursive: true });
    const l = lockSync(`${this.file(m)}.lock`);
    try {
      const next = fn(this.get(m));
      if (next) writeFileAtomic(this.file(m), JSON.stringify(next) + '\n');
      else fs.rmSync(this.file(m), { force: true });
      return next ?? { failures: 0, lastFailure: 0, retryAt: 0, lastError: '' };
    } finally {
      l.release();
    }
  }
}
