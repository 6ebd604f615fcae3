// The reader's ledger of builds: queued, running and finished derivations, durations, and the
// verdicts at the end of the stream for builds that never finished.
import type { BuildFailed, BuildStarted, FailureCause, Source, TraceEvent } from './events.js';

interface Running { start: number; source: Source; pid: number | null; activity?: string }

export class BuildLedger {
  private readonly running = new Map<string, Running>();
  private readonly queued = new Map<string, Source>();
  /** Final state of every derivation that finished (its failure, when it failed), for the exit status and de-duplication. */
  private readonly final = new Map<string, 'succeeded' | BuildFailed>();
  private readonly pids = new Map<number, string>();
  private failures = 0;
  /** A build started after a failure: the builder keeps going, so what never ran waited on a failure. */
  private keptGoing = false;
  private sawBuild = false;

  constructor(private readonly emit: (ev: TraceEvent) => void) {}

  get failedCount(): number {
    let n = 0;
    for (const v of this.final.values()) if (v !== 'succeeded') n++;
    return n;
  }

  isRunning(drv: string): boolean {
    return this.running.has(drv);
  }

  isFinished(drv: string): boolean {
    return this.final.has(drv);
  }

  /** The failure that is the derivation's final state, if it failed. */
  failureOf(drv: string): BuildFailed | null {
    const v = this.final.get(drv);
    return v === undefined || v === 'succeeded' ? null : v;
  }

  drvOfPid(pid: number): string | null {
    return this.pids.get(pid) ?? null;
  }

  queue(source: Source, drv: string, time: number): void {
    if (this.queued.has(drv) || this.running.has(drv) || this.final.has(drv)) return;
    this.queued.set(drv, source);
    this.emit({ type: 'build-queued', time, source, drv });
  }

  started(ev: BuildStarted): void {
    this.queued.delete(ev.drv);
    this.sawBuild = true;
    // A hook failure is not final: the scheduler may build the derivation again.
    this.final.delete(ev.drv);
    if (this.failures > 0) this.keptGoing = true;
    this.running.set(ev.drv, { start: ev.time, source: ev.source, pid: ev.pid, ...(ev.activity ? { activity: ev.activity } : {}) });
    if (ev.pid !== null) this.pids.set(ev.pid, ev.drv);
    this.emit(ev);
  }

  private duration(drv: string, time: number): number | null {
    const r = this.running.get(drv);
    return r ? Math.round((time - r.start) * 1000) / 1000 : null;
  }

  private close(drv: string): Running | undefined {
    const r = this.running.get(drv);
    if (r) {
      this.running.delete(drv);
      if (r.pid !== null && this.pids.get(r.pid) === drv) this.pids.delete(r.pid);
    }
    this.queued.delete(drv);
    return r;
  }

  succeeded(source: Source, drv: string, out: string | null, time: number, activity?: string): void {
    const duration = this.duration(drv, time);
    this.close(drv);
    this.sawBuild = true;
    this.final.set(drv, 'succeeded');
    this.emit({ type: 'build-succeeded', time, source, ...(activity ? { activity } : {}), drv, out, duration });
  }

  /**
   * Returns false when the derivation had already failed (Nix repeats some errors at the end), unless
   * that failure was `interrupted`: a build that stopped without an error only looks interrupted, and
   * an error naming it afterwards tells the real cause (Nix 2.8 without --keep-going stops a build
   * that timed out before it says so). The new verdict follows as a second build-failed.
   */
  failed(source: Source, drv: string, status: number | null, message: string | null, cause: FailureCause, time: number, activity?: string): boolean {
    const before = this.running.has(drv) ? null : this.failureOf(drv);
    if (before !== null && (before.cause !== 'interrupted' || cause === 'interrupted')) return false;
    // The build ended when it stopped, not when Nix got round to saying why.
    const duration = before !== null ? before.duration : this.duration(drv, time);
    this.close(drv);
    this.sawBuild = true;
    if (before === null) this.failures++;
    const ev: BuildFailed = { type: 'build-failed', time, source, ...(activity ? { activity } : {}), drv, status, message, duration, cause };
    this.final.set(drv, ev);
    this.emit(ev);
    return true;
  }

  /** End of the whole input: builds still running were cut off; queued ones never ran. */
  finish(time: number): void {
    for (const [drv, r] of [...this.running]) {
      this.failed(r.source, drv, null, 'the trace ended while the build was running', 'interrupted', time, r.activity);
    }
    // A plan without a single build event is a log that is no trace (plain `nix-build`): no verdicts.
    if (this.queued.size === 0 || !this.sawBuild) return;
    const cause: FailureCause = this.failures > 0 && this.keptGoing ? 'dependency' : 'cancelled';
    const message = cause === 'dependency' ? 'never started: a dependency failed' : 'never started';
    for (const [drv, source] of [...this.queued]) this.failed(source, drv, null, message, cause, time);
  }
}
