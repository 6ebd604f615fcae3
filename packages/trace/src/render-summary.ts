// `--format summary`: at the end, every build with duration, machine and result; failures with the
// tail of their log; the slowest builds; totals. Passthrough lines go to stderr meanwhile.
import type { Source, TraceEvent } from './events.js';
import { formatBytes, formatDuration, printable } from './names.js';
import type { Output } from './output.js';
import type { TraceSink } from './sink.js';
import type { BuildInfo, Tracker } from './tracker.js';
import { failureText, hostText, logTail } from './wording.js';

const ORDER: Record<BuildInfo['state'], number> = { failed: 0, running: 1, queued: 2, succeeded: 3 };

export class SummaryRenderer implements TraceSink {
  constructor(private readonly out: Output, private readonly passOut: Output, private readonly tracker: Tracker, private readonly tailLines = 10) {}

  event(ev: TraceEvent): void {
    this.tracker.event(ev);
  }

  rawLog?: (source: Source, activity: string | null, drv: string | null, pid: number | null, buf: Buffer, start: number, end: number, time: number, line: boolean) => void =
    (_source, _activity, drv, _pid, buf, start, end, time, line) => {
      this.tracker.lastTime = time;
      this.tracker.rawLog(drv, buf, start, end, line);
    };

  passthrough(buf: Buffer, start: number, end: number): void {
    this.passOut.bytes(buf, start, end);
  }

  end(): void {
    const t = this.tracker;
    const w = (s: string): void => this.out.write(printable(s).trimEnd() + '\n');
    const builds = [...t.builds.values()];
    const byStart = builds.slice().sort((a, b) => (a.start ?? Infinity) - (b.start ?? Infinity) || a.name.localeCompare(b.name));

    w(`Builds (${builds.length}):`);
    // Loops, not Math.max(...widths): spreading 100k builds into arguments overflows the stack.
    let nameWidth = 10;
    let hostWidth = 7;
    for (const b of builds) {
      nameWidth = Math.max(nameWidth, b.name.length);
      hostWidth = Math.max(hostWidth, hostText(b.host).length);
    }
    nameWidth = Math.min(nameWidth, 50);
    hostWidth = Math.min(hostWidth, 30);
    w(`  ${'result'.padEnd(9)} ${'duration'.padStart(8)}  ${'machine'.padEnd(hostWidth)}  ${'derivation'.padEnd(nameWidth)}`);
    for (const b of byStart.sort((a, b) => ORDER[a.state] - ORDER[b.state])) {
      const result = b.state === 'succeeded' ? 'ok' : b.state === 'failed' ? 'FAILED' : b.state;
      const duration = b.duration !== null ? formatDuration(b.duration) : '-';
      const why = b.state === 'failed' ? `  ${failureText(b)}` : '';
      const usual = b.duration !== null && t.usually(b.name) !== null ? `  (usually ${formatDuration(t.usually(b.name)!)})` : '';
      w(`  ${result.padEnd(9)} ${duration.padStart(8)}  ${hostText(b.host).padEnd(hostWidth)}  ${b.name.padEnd(nameWidth)}${why}${usual}`);
    }

    const failed = byStart.filter((b) => b.state === 'failed' && b.cause !== 'dependency' && b.cause !== 'cancelled');
    if (failed.length > 0) {
      w('');
      w(`Failures (${failed.length}):`);
      for (const b of failed) {
        w(`  ${b.name}: ${failureText(b)}`);
        w(`    ${b.drv}`);
        const tail = logTail(b, this.tailLines);
        if (tail.from) w(`    last ${tail.lines.length} lines of ${tail.from}:`);
        else if (tail.lines.length > 0) w(`    last ${tail.lines.length} lines of its log:`);
        for (const line of tail.lines) w(`    | ${line}`);
      }
    }

    const timed = builds.filter((b) => b.duration !== null && b.start !== null).sort((a, b) => b.duration! - a.duration!);
    if (timed.length > 0) {
      w('');
      w('Slowest:');
      for (const b of timed.slice(0, 5)) w(`  ${formatDuration(b.duration!).padStart(8)}  ${b.name}`);
    }

    w('');
    const c = t.counts;
    const parts = [`${c.succeeded} succeeded`, `${c.failed} failed`];
    if (c.running) parts.push(`${c.running} unfinished`);
    if (c.queued) parts.push(`${c.queued} not started`);
    const buildTime = timed.reduce((a, b) => a + b.duration!, 0);
    w(`Totals: ${builds.length} build${builds.length === 1 ? '' : 's'}: ${parts.join(', ')}; build time ${formatDuration(buildTime)}, wall time ${formatDuration(t.lastTime)}` +
      (t.downloadsDone ? `; ${t.downloadsDone} downloads, ${formatBytes(t.downloadedBytes)}` : '') +
      (t.substitutionsDone ? `; ${t.substitutionsDone} substituted` : ''));
  }
}
