// `--format plain`: one readable line per state change, for CI logs; other lines pass through.
import type { Source, TraceEvent } from './events.js';
import { drvName, formatBytes, formatDuration, printable } from './names.js';
import type { Output } from './output.js';
import type { TraceSink } from './sink.js';
import type { Tracker } from './tracker.js';
import { failureText, hostText, logTail, messageText, usuallyText } from './wording.js';

export interface PlainOptions {
  /** Also print every build log line, prefixed with the derivation's name. */
  logs?: boolean;
  /** Lines of a failed build's log shown under its failure. */
  tailLines?: number;
}

/** A log "line" longer than this without a newline is printed in pieces, so that memory stays bounded. */
const MAX_PARTIAL = 1024 * 1024;

export class PlainRenderer implements TraceSink {
  private queuedPending = 0;
  private queuedTime = 0;
  /** With --logs, per build: the start of a log line whose newline has not come yet (Guix chunks cut lines anywhere). */
  private readonly partial = new Map<string, string>();

  constructor(private readonly out: Output, private readonly tracker: Tracker, private readonly options: PlainOptions = {}) {
    // Printing every log line needs every line decoded: take ordinary build-log events then.
    if (options.logs) delete this.rawLog;
  }

  private say(time: number, text: string): void {
    this.out.write(`[${time.toFixed(1).padStart(7)}s] ${printable(text)}\n`);
  }

  private flushQueued(): void {
    if (this.queuedPending === 0) return;
    this.say(this.queuedTime, `queued ${this.queuedPending} derivation${this.queuedPending === 1 ? '' : 's'}`);
    this.queuedPending = 0;
  }

  private progress(): string {
    const c = this.tracker.counts;
    const total = c.queued + c.running + c.succeeded + c.failed;
    return `[${c.succeeded + c.failed}/${total}${c.failed ? `, ${c.failed} failed` : ''}]`;
  }

  /** Prints the whole lines of a piece of a build's log; the rest waits for its newline. */
  private logLines(drv: string, text: string): void {
    const name = drvName(drv);
    let from = 0;
    let nl = text.indexOf('\n');
    if (nl >= 0) {
      const head = this.partial.get(drv);
      if (head !== undefined) {
        this.logLine(name, head + text.slice(0, nl));
        this.partial.delete(drv);
        from = nl + 1;
        nl = text.indexOf('\n', from);
      }
      for (; nl >= 0; from = nl + 1, nl = text.indexOf('\n', from)) this.logLine(name, text.slice(from, nl));
    }
    if (from === text.length) return;
    const rest = (this.partial.get(drv) ?? '') + text.slice(from);
    if (rest.length < MAX_PARTIAL) this.partial.set(drv, rest);
    else {
      this.logLine(name, rest);
      this.partial.delete(drv);
    }
  }

  /**
   * One `NAME> line` of --logs. The line came inside the trace (a Nix log line, a Guix chunk), so it
   * is shown as every human output shows text from the trace: no escape sequence, no control character.
   */
  private logLine(name: string, line: string): void {
    // A CRLF line ends at its CR (as a log tail's does); a CR inside it is shown as `?`.
    this.out.write(printable(`${name}> ${line.endsWith('\r') ? line.slice(0, -1) : line}`) + '\n');
  }

  /** The end of a build's log (or of the input) ends its last line. */
  private endLog(drv: string): void {
    const rest = this.partial.get(drv);
    if (rest === undefined) return;
    this.logLine(drvName(drv), rest);
    this.partial.delete(drv);
  }

  event(ev: TraceEvent): void {
    // A failure of a build that had failed already revises its verdict (see BuildLedger.failed).
    const revised = ev.type === 'build-failed' && this.tracker.builds.get(ev.drv)?.state === 'failed';
    this.tracker.event(ev);
    if (ev.type === 'build-queued') {
      if (this.queuedPending === 0) this.queuedTime = ev.time;
      this.queuedPending++;
      return;
    }
    if (ev.type === 'progress' || ev.type === 'download-progress') return;
    if (ev.type === 'build-log') {
      if (this.options.logs && ev.drv) this.logLines(ev.drv, ev.text);
      return;
    }
    if (ev.type === 'build-succeeded' || ev.type === 'build-failed') this.endLog(ev.drv);
    this.flushQueued();
    const t = ev.time;
    switch (ev.type) {
      case 'build-started': {
        const b = this.tracker.builds.get(ev.drv)!;
        const extra = [ev.host ? `on ${ev.host}` : '', usuallyText(this.tracker, b) ? `(${usuallyText(this.tracker, b)})` : ''].filter(Boolean).join(' ');
        this.say(t, `start   ${b.name}${extra ? ' ' + extra : ''}`);
        return;
      }
      case 'build-remote':
        this.say(t, `remote  ${drvName(ev.drv)} on ${hostText(ev.host)}`);
        return;
      case 'build-remote-done':
        this.say(t, `remote  ${drvName(ev.drv)} done on ${hostText(ev.host)}`);
        return;
      case 'build-phase':
        if (ev.drv) this.say(t, `phase   ${drvName(ev.drv)} ${ev.phase}`);
        return;
      case 'build-succeeded': {
        const d = ev.duration !== null ? ` in ${formatDuration(ev.duration)}` : '';
        this.say(t, `ok      ${drvName(ev.drv)}${d} ${this.progress()}`);
        return;
      }
      case 'build-failed': {
        const b = this.tracker.builds.get(ev.drv)!;
        const d = ev.duration !== null ? ` after ${formatDuration(ev.duration)}` : '';
        this.say(t, `FAILED  ${b.name}${d}: ${failureText(b)} ${this.progress()}`);
        // Its log was shown with the verdict it revises.
        if (ev.cause !== 'dependency' && ev.cause !== 'cancelled' && !revised) {
          const tail = logTail(b, this.options.tailLines ?? 10);
          // The tail is text from the trace or from a log file: shown without escapes, as by tty and summary.
          if (!this.options.logs) for (const line of tail.lines) this.out.write(`          | ${printable(line)}\n`);
          if (tail.from) this.out.write(`          (log: ${printable(tail.from)})\n`);
        }
        return;
      }
      case 'download-started':
        this.say(t, `fetch   ${ev.path ? drvName(ev.path) : ev.url ?? '?'}${ev.expected ? ` (${formatBytes(ev.expected)})` : ''}`);
        return;
      case 'download-succeeded':
        this.say(t, `fetched ${ev.path ? drvName(ev.path) : ev.url ?? '?'}${ev.done ? ` (${formatBytes(ev.done)})` : ''}`);
        return;
      case 'download-failed':
        this.say(t, `FAILED  download of ${ev.path ? drvName(ev.path) : ev.url ?? '?'}`);
        return;
      case 'substitute-started':
        this.say(t, `subst   ${drvName(ev.path)}${ev.substituter ? ` from ${ev.substituter}` : ''}`);
        return;
      case 'substitute-succeeded':
        this.say(t, `substd  ${drvName(ev.path)}`);
        return;
      case 'substitute-failed':
        this.say(t, `FAILED  substitution of ${drvName(ev.path)}${ev.message ? `: ${ev.message}` : ''}`);
        return;
      case 'hash-mismatch':
        this.say(t, `hash mismatch for ${ev.path}: ${ev.algo ?? 'hash'} expected ${ev.expected ?? '?'}, got ${ev.actual ?? '?'}`);
        return;
      case 'message':
        if (ev.level === 'error' || ev.level === 'warn') this.say(t, messageText(ev.level, ev.text));
        else if (ev.level === 'notice' || ev.level === 'info') this.say(t, ev.text);
        return;
      case 'unknown':
        this.say(t, `unknown ${ev.raw}`);
        return;
    }
  }

  rawLog?: (source: Source, activity: string | null, drv: string | null, pid: number | null, buf: Buffer, start: number, end: number, time: number, line: boolean) => void =
    (_source, _activity, drv, _pid, buf, start, end, time, line) => {
      this.tracker.lastTime = time;
      this.tracker.rawLog(drv, buf, start, end, line);
    };

  passthrough(buf: Buffer, start: number, end: number): void {
    // Queued derivations are counted until the next event: a plan's own lines pass through meanwhile.
    this.out.bytes(buf, start, end);
  }

  end(): void {
    for (const drv of [...this.partial.keys()]) this.endLog(drv);
    this.flushQueued();
    const t = this.tracker;
    const parts = [`${t.counts.succeeded} built`, `${t.counts.failed} failed`];
    if (t.downloadsDone) parts.push(`${t.downloadsDone} downloaded (${formatBytes(t.downloadedBytes)})`);
    if (t.substitutionsDone) parts.push(`${t.substitutionsDone} substituted`);
    this.say(t.lastTime, `${t.counts.failed ? 'FAILED' : 'done'}: ${parts.join(', ')} in ${formatDuration(t.lastTime)}`);
  }
}
