// `--format tty`: a live status block at the bottom of the terminal, redrawn at most ten times a
// second, with finished and failed builds and passthrough lines scrolling above it.
import type { Source, TraceEvent } from './events.js';
import { drvName, formatBytes, formatDuration, printable } from './names.js';
import type { Output } from './output.js';
import type { TraceSink } from './sink.js';
import type { Tracker } from './tracker.js';
import { clock, failureText, hostText, logTail, messageText } from './wording.js';

export interface TtyOptions {
  /** Seconds on the clock event times use. */
  now: () => number;
  columns?: () => number;
  rows?: () => number;
  /** Milliseconds between redraws. */
  interval?: number;
  tailLines?: number;
}

export class TtyRenderer implements TraceSink {
  /** Lines of the status block now on screen; the cursor is at the end of its last line. */
  private drawn = 0;
  private dirty = true;
  private lastSecond = -1;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly out: Output, private readonly tracker: Tracker, private readonly options: TtyOptions) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), this.options.interval ?? 100);
  }

  private get columns(): number {
    return Math.max(20, this.options.columns?.() ?? 80);
  }

  private tick(): void {
    const second = Math.floor(this.options.now());
    if (!this.dirty && second === this.lastSecond) return;
    this.lastSecond = second;
    this.redraw();
    this.out.flush();
  }

  private erase(): void {
    if (this.drawn === 0) return;
    this.out.write(`\r${this.drawn > 1 ? `\x1b[${this.drawn - 1}A` : ''}\x1b[J`);
    this.drawn = 0;
    this.dirty = true;
  }

  private above(text: string): void {
    this.erase();
    this.out.write(printable(text) + '\n');
  }

  private fit(raw: string): string {
    // One screen line each: the block is erased by counting them, so no line may be wider than the
    // screen, or the terminal wraps it and a line of the old block stays behind on every redraw. A tab
    // (up to eight columns) becomes a space; wide characters count as two columns.
    const line = printable(raw).replace(/[\n\t]/g, ' ');
    const w = this.columns - 1;
    if (line.length <= w && !/[\u1100-\uffff]/.test(line)) return line;
    let width = 0;
    let cut = -1;
    let i = 0;
    for (const ch of line) {
      const c = columnsOf(ch.codePointAt(0)!);
      // Where a line that does not fit is cut: with room for the '~' that says so.
      if (cut < 0 && width + c > w - 1) cut = i;
      width += c;
      if (width > w) return line.slice(0, cut) + '~';
      i += ch.length;
    }
    return line;
  }

  /** The status block's lines. */
  status(now: number): string[] {
    const t = this.tracker;
    const c = t.counts;
    const total = c.queued + c.running + c.succeeded + c.failed;
    const eta = t.eta(now);
    const head = [`[${clock(now)}]`, `${c.succeeded + c.failed}/${total} done`, `${c.running} running`, `${c.failed} failed`, `${c.queued} queued`];
    if (t.downloads.size > 0) head.push(`${t.downloads.size} downloading`);
    head.push(eta === null ? 'ETA ?' : `ETA ${clock(eta)}`);
    const lines = [head.join('  ')];
    const room = Math.max(1, (this.options.rows?.() ?? 24) - 3);
    const running = t.running().sort((a, b) => (a.start ?? 0) - (b.start ?? 0));
    // A loop, not Math.max(...widths): spreading very many builds into arguments overflows the stack.
    let nameWidth = 0;
    for (const b of running) nameWidth = Math.max(nameWidth, Math.min(40, b.name.length));
    for (const b of running.slice(0, room)) {
      const elapsed = b.start !== null ? clock(now - b.start) : '-';
      const usual = t.usually(b.name);
      const parts = [`  > ${b.name.padEnd(nameWidth)}`, hostText(b.host).padEnd(8), elapsed.padStart(5)];
      if (b.phase) parts.push(b.phase);
      if (usual !== null) parts.push(`(usually ${formatDuration(usual)})`);
      lines.push(parts.join('  '));
    }
    if (running.length > room) lines.push(`  … and ${running.length - room} more running`);
    for (const d of [...t.downloads.values()].slice(0, 3)) {
      const what = d.path ? drvName(d.path) : d.url ?? '?';
      const pct = d.done !== null && d.expected ? ` ${Math.floor((100 * d.done) / d.expected)}% of ${formatBytes(d.expected)}` : d.done !== null ? ` ${formatBytes(d.done)}` : '';
      lines.push(`  v ${what}${pct}`);
    }
    return lines.map((l) => this.fit(l));
  }

  redraw(): void {
    this.erase();
    const lines = this.status(this.options.now());
    this.out.write(lines.join('\n'));
    this.drawn = lines.length;
    this.dirty = false;
  }

  event(ev: TraceEvent): void {
    // A failure of a build that had failed already revises its verdict (see BuildLedger.failed).
    const revised = ev.type === 'build-failed' && this.tracker.builds.get(ev.drv)?.state === 'failed';
    this.tracker.event(ev);
    this.dirty = true;
    switch (ev.type) {
      case 'build-succeeded':
        this.above(this.fit(`ok      ${drvName(ev.drv)}${ev.duration !== null ? ` (${formatDuration(ev.duration)})` : ''}`));
        return;
      case 'build-failed': {
        const b = this.tracker.builds.get(ev.drv)!;
        this.above(this.fit(`FAILED  ${b.name}${b.host ? ` on ${b.host}` : ''}: ${failureText(b)}`));
        // Its log was shown with the verdict it revises.
        if (ev.cause !== 'dependency' && ev.cause !== 'cancelled' && !revised) {
          const tail = logTail(b, this.options.tailLines ?? 5);
          for (const line of tail.lines) this.above(this.fit(`        | ${line}`));
        }
        return;
      }
      case 'hash-mismatch':
        this.above(this.fit(`hash mismatch for ${ev.path}`));
        return;
      case 'substitute-failed':
        this.above(this.fit(`FAILED  substitution of ${drvName(ev.path)}`));
        return;
      case 'message':
        if (ev.level === 'error' || ev.level === 'warn') this.above(this.fit(messageText(ev.level, ev.text.split('\n')[0]!)));
        return;
      default:
        return;
    }
  }

  rawLog?: (source: Source, activity: string | null, drv: string | null, pid: number | null, buf: Buffer, start: number, end: number, time: number, line: boolean) => void =
    (_source, _activity, drv, _pid, buf, start, end, time, line) => {
      this.tracker.lastTime = time;
      this.tracker.rawLog(drv, buf, start, end, line);
    };

  passthrough(buf: Buffer, start: number, end: number): void {
    this.erase();
    this.out.bytes(buf, start, end);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  end(): void {
    this.stop();
    this.erase();
    const t = this.tracker;
    const parts = [`${t.counts.succeeded} built`, `${t.counts.failed} failed`];
    if (t.downloadsDone) parts.push(`${t.downloadsDone} downloaded (${formatBytes(t.downloadedBytes)})`);
    this.out.write(`${t.counts.failed ? 'FAILED' : 'done'}: ${parts.join(', ')} in ${formatDuration(t.lastTime)}\n`);
  }
}

/**
 * Columns a character takes on a terminal, erring wide (too wide only cuts a status line short): East
 * Asian wide and fullwidth characters, and emoji, take two.
 */
function columnsOf(cp: number): number {
  if (cp < 0x1100) return 1;
  return cp <= 0x115f || (cp >= 0x2600 && cp <= 0x27bf) || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) || (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f000 && cp <= 0x1faff) || (cp >= 0x20000 && cp <= 0x3fffd)
    ? 2
    : 1;
}
