// The picture of a whole build that the human outputs draw: every derivation's state, counts,
// downloads, log tails, and the estimate of what is left.
import type { BuildFailed, FailureCause, TraceEvent } from './events.js';
import { drvName } from './names.js';

export type BuildState = 'queued' | 'running' | 'succeeded' | 'failed';

export interface BuildInfo {
  drv: string;
  name: string;
  state: BuildState;
  start: number | null;
  end: number | null;
  duration: number | null;
  host: string | null;
  log: string | null;
  phase: string | null;
  status: number | null;
  cause: FailureCause | null;
  message: string | null;
  /** The last lines of its log, kept while it runs and after it failed. */
  tail: string[];
}

export interface DownloadInfo {
  key: string;
  path: string | null;
  url: string | null;
  done: number | null;
  expected: number | null;
  start: number;
}

/** Durations of earlier runs by derivation name, from --history. */
export interface Estimator {
  estimate(name: string): number | null;
}

export const TAIL_LINES = 12;
const MAX_LINE = 1000;

export class Tracker {
  readonly builds = new Map<string, BuildInfo>();
  readonly downloads = new Map<string, DownloadInfo>();
  readonly errors: string[] = [];
  counts = { queued: 0, running: 0, succeeded: 0, failed: 0 };
  downloadsDone = 0;
  downloadedBytes = 0;
  substitutionsDone = 0;
  substitutionsFailed = 0;
  maxRunning = 0;
  /** Time of the last event: the length of the run when the input ends. */
  lastTime = 0;
  private readonly partial = new Map<string, string>();
  /** Machines named by a remote line before their build's start (Nix 1.x's hook prints its line itself, in its own time). */
  private readonly remoteBeforeStart = new Map<string, string | null>();

  constructor(private readonly estimator: Estimator | null = null) {}

  usually(name: string): number | null {
    return this.estimator?.estimate(name) ?? null;
  }

  private build(drv: string): BuildInfo {
    let b = this.builds.get(drv);
    if (!b) {
      b = { drv, name: drvName(drv), state: 'queued', start: null, end: null, duration: null, host: null, log: null, phase: null, status: null, cause: null, message: null, tail: [] };
      this.builds.set(drv, b);
      this.counts.queued++;
    }
    return b;
  }

  private setState(b: BuildInfo, state: BuildState): void {
    this.counts[b.state]--;
    b.state = state;
    this.counts[state]++;
    if (this.counts.running > this.maxRunning) this.maxRunning = this.counts.running;
  }

  event(ev: TraceEvent): void {
    this.lastTime = ev.time;
    switch (ev.type) {
      case 'build-queued':
        this.build(ev.drv);
        return;
      case 'build-started': {
        const b = this.build(ev.drv);
        this.setState(b, 'running');
        b.start = ev.time;
        b.end = null;
        // Each start is a new attempt: after a hook failure the rebuild is local unless a machine is named.
        b.host = ev.host ?? this.remoteBeforeStart.get(ev.drv) ?? null;
        this.remoteBeforeStart.delete(ev.drv);
        b.log = ev.log;
        b.tail = [];
        b.phase = null;
        return;
      }
      case 'build-remote': {
        const b = this.build(ev.drv);
        b.host = ev.host;
        if (b.state !== 'running') this.remoteBeforeStart.set(ev.drv, ev.host);
        return;
      }
      case 'build-phase':
        if (ev.drv) this.build(ev.drv).phase = ev.phase;
        return;
      case 'build-succeeded': {
        const b = this.build(ev.drv);
        this.setState(b, 'succeeded');
        b.end = ev.time;
        b.duration = ev.duration ?? (b.start !== null ? ev.time - b.start : null);
        b.tail = [];
        this.partial.delete(ev.drv);
        return;
      }
      case 'build-failed':
        this.failed(ev);
        return;
      case 'build-log':
        if (ev.drv) this.logText(ev.drv, ev.text);
        return;
      case 'download-started':
      case 'download-progress': {
        const key = ev.path ?? ev.url ?? '?';
        let d = this.downloads.get(key);
        if (!d) {
          d = { key, path: ev.path, url: ev.url, done: null, expected: null, start: ev.time };
          this.downloads.set(key, d);
        }
        if (ev.done !== null) d.done = ev.done;
        if (ev.expected !== null) d.expected = ev.expected;
        return;
      }
      case 'download-succeeded':
      case 'download-failed': {
        const key = ev.path ?? ev.url ?? '?';
        const d = this.downloads.get(key);
        this.downloads.delete(key);
        if (ev.type === 'download-succeeded') {
          this.downloadsDone++;
          this.downloadedBytes += ev.done ?? ev.expected ?? d?.done ?? 0;
        }
        return;
      }
      case 'substitute-succeeded':
        this.substitutionsDone++;
        return;
      case 'substitute-failed':
        this.substitutionsFailed++;
        return;
      case 'message':
        if (ev.level === 'error') {
          this.errors.push(ev.text);
          if (this.errors.length > 20) this.errors.shift();
        }
        return;
      default:
        return;
    }
  }

  private failed(ev: BuildFailed): void {
    const b = this.build(ev.drv);
    this.setState(b, 'failed');
    b.end = ev.time;
    b.duration = ev.duration;
    b.status = ev.status;
    b.cause = ev.cause;
    b.message = ev.message;
    const rest = this.partial.get(ev.drv);
    if (rest) this.pushTail(b, rest);
    this.partial.delete(ev.drv);
  }

  private pushTail(b: BuildInfo, line: string): void {
    b.tail.push(line.length > MAX_LINE ? line.slice(0, MAX_LINE) : line);
    if (b.tail.length > TAIL_LINES) b.tail.shift();
  }

  private logText(drv: string, text: string): void {
    const b = this.builds.get(drv);
    if (!b || b.state === 'succeeded') return;
    // Fast case: one whole line (every Nix log line is one).
    const nl = text.indexOf('\n');
    if (nl === text.length - 1 && !this.partial.has(drv)) {
      this.pushTail(b, text.slice(0, -1));
      return;
    }
    const parts = ((this.partial.get(drv) ?? '') + text).split('\n');
    const last = parts.pop()!;
    for (const line of parts) this.pushTail(b, line.endsWith('\r') ? line.slice(0, -1) : line);
    if (last === '') this.partial.delete(drv);
    else this.partial.set(drv, last.length > MAX_LINE ? last.slice(0, MAX_LINE) : last);
  }

  /**
   * The undecoded form of build-log events (see TraceSink.rawLog): only what the tail keeps is
   * decoded, so following a fast log costs little more than reading it.
   */
  rawLog(drv: string | null, buf: Buffer, start: number, end: number, line: boolean): void {
    if (drv === null) return;
    const b = this.builds.get(drv);
    if (!b || b.state === 'succeeded') return;
    if (line) {
      this.logText(drv, buf.toString('utf8', start, end) + '\n');
      return;
    }
    // Back up over the last TAIL_LINES + 1 newlines; whatever came before is older than the tail.
    let from = end;
    for (let n = 0; n <= TAIL_LINES && from > start; n++) {
      const nl = buf.lastIndexOf(0x0a, from - 1);
      if (nl < start) {
        from = start;
        break;
      }
      from = nl;
    }
    if (from > start) {
      this.partial.delete(drv);
      from++;
    }
    this.logText(drv, buf.toString('utf8', from, end));
  }

  running(): BuildInfo[] {
    const r: BuildInfo[] = [];
    for (const b of this.builds.values()) if (b.state === 'running') r.push(b);
    return r;
  }

  /**
   * Seconds left: what running builds usually still need plus what queued ones usually take,
   * spread over as many builds as have run at once. Null when nothing is known to estimate from.
   */
  eta(now: number): number | null {
    const finished: number[] = [];
    for (const b of this.builds.values()) if (b.state === 'succeeded' && b.duration !== null) finished.push(b.duration);
    const typical = finished.length > 0 ? finished.reduce((a, x) => a + x, 0) / finished.length : null;
    let work = 0;
    let unknown = 0;
    for (const b of this.builds.values()) {
      if (b.state !== 'running' && b.state !== 'queued') continue;
      const est = this.usually(b.name) ?? typical;
      if (est === null) {
        unknown++;
        continue;
      }
      work += b.state === 'running' && b.start !== null ? Math.max(est - (now - b.start), 0) : est;
    }
    if (unknown > 0 && work === 0) return null;
    if (this.counts.running + this.counts.queued === 0) return 0;
    return work / Math.max(this.maxRunning, 1);
  }
}
