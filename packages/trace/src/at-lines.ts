// The `@ VERB …` trace dialects — drover's, Nix 0.16/1.x's and Guix's — turned into events.
import type { BuildLedger } from './build-ledger.js';
import type { FailureCause, Source, TraceEvent } from './events.js';
import { parseBuildLogHeader } from './guix.js';
import { parseTraceLine, splitAtLine } from '@drover/worker/trace-lines';

export type AtResult =
  | { kind: 'event' }
  | { kind: 'log'; pid: number; length: number }
  | { kind: 'malformed'; why: string }
  | { kind: 'passthrough' };

const EVENT: AtResult = { kind: 'event' };
const PASS: AtResult = { kind: 'passthrough' };
const bad = (why: string): AtResult => ({ kind: 'malformed', why });

/** A count, status or PID: digits that fit a double exactly (past 2^53 the value would not be the trace's). */
const num = (s: string | undefined): number | null => (s !== undefined && /^\d+$/.test(s) && Number.isSafeInteger(Number(s)) ? Number(s) : null);
const opt = (s: string | undefined): string | null => (s === undefined || s === '' || s === '-' ? null : s);

/** The cause a failure message implies, for dialects whose STATUS field does not say. */
export function causeOfMessage(message: string, fallback: FailureCause): FailureCause {
  // drover-build's own words for what it would not build (packages/worker, scheduler.ts); anchored,
  // so that nothing in the names they quote can make them look like another cause.
  if (/^cannot build '[^']*': it needs .*, but this is a '/.test(message)) return 'unsupported';
  if (/^cannot build '[^']*': its input '[^']*' failed$/.test(message)) return 'dependency';
  if (/^timeout$|timed out/.test(message)) return 'timeout';
  if (/^cached$|cached failure/.test(message)) return 'cached';
  if (/hash mismatch/.test(message)) return 'hash-mismatch';
  if (/is required to build|unsupported[ -]platform|platform unsupported/.test(message)) return 'unsupported';
  if (dependencyFailed(message)) return 'dependency';
  return fallback;
}

/**
 * /dependenc(y|ies).*fail/, in linear time: on a long message with many "dependency" and no "fail"
 * the regular expression backtracks from each of them to the end, quadratic in the message's length.
 */
function dependencyFailed(message: string): boolean {
  // `.` stops at a line terminator: each line is tried on its own, from its first "dependenc(y|ies)".
  for (const line of message.split(/[\n\r\u2028\u2029]/)) {
    const at = line.search(/dependenc(?:y|ies)/);
    if (at >= 0 && line.indexOf('fail', at) >= 0) return true;
  }
  return false;
}

export class AtLines {
  /** The last dialect a line proved; lines every dialect shares are credited to it. */
  private dialect: Source | null = null;

  constructor(private readonly ledger: BuildLedger, private readonly emit: (ev: TraceEvent) => void) {}

  private shared(fallback: Source): Source {
    return this.dialect ?? fallback;
  }

  private proved(source: Source): Source {
    this.dialect = source;
    return source;
  }

  /** One line without its newline; the caller has checked that it starts with `@ `. */
  line(line: string, time: number): AtResult {
    const at = splitAtLine(line)!;
    const { verb, rest } = at;
    const f = rest === '' ? [] : rest.split(' ');
    switch (verb) {
      case 'build-started': {
        const d = parseTraceLine(line);
        if (d?.verb === 'build-started') {
          this.ledger.started({ type: 'build-started', time, source: this.proved('drover'), drv: d.drv, out: d.out, system: d.system, log: d.log, pid: null, host: null });
          return EVENT;
        }
        if (f.length === 0 || f[0] === '') return bad('@ build-started without a derivation');
        const pid = num(f[4]);
        if (f.length > 5 || (f.length === 5 && pid === null)) return bad('@ build-started with unexpected fields');
        const source = pid !== null ? this.proved('guix') : this.dialect === 'guix' ? 'guix' : this.proved('nix');
        this.ledger.started({ type: 'build-started', time, source, drv: f[0]!, out: opt(f[1]), system: opt(f[2]), log: opt(f[3]), pid, host: null });
        return EVENT;
      }
      case 'build-remote':
      case 'build-remote-start':
      case 'build-remote-done': {
        if (!f[0]) return bad(`@ ${verb} without a derivation`);
        const source = verb === 'build-remote' ? this.shared('drover') : this.proved('nix');
        const type = verb === 'build-remote-done' ? 'build-remote-done' : 'build-remote';
        this.emit({ type, time, source, drv: f[0], host: opt(f.slice(1).join(' ')) });
        return EVENT;
      }
      case 'build-succeeded': {
        if (!f[0]) return bad('@ build-succeeded without a derivation');
        const out = opt(f[1]);
        const source = out !== null ? this.proved('drover') : this.dialect === 'guix' ? 'guix' : this.proved('nix');
        this.ledger.succeeded(source, f[0], out, time);
        return EVENT;
      }
      case 'build-failed':
      case 'hook-failed': {
        // DRV OUT STATUS MESSAGE, or Nix 1.x's `DRV - timeout` / `DRV - cached` / `DRV - STATUS timeout`.
        const m = /^(\S+)(?: (\S+))?(?: (\S+))?(?: (.*))?$/s.exec(rest);
        if (!m) return bad(`@ ${verb} without a derivation`);
        const [, drv, outField, third, tail] = m;
        const out = opt(outField);
        const source = out !== null ? this.proved('drover') : this.dialect === 'guix' ? 'guix' : this.proved('nix');
        let status = num(third);
        let message = status !== null || third === undefined ? (tail ?? null) : [third, tail].filter((x) => x !== undefined).join(' ');
        if (third !== undefined && status === null && /^-\d+$/.test(third) && Number.isSafeInteger(Number(third))) { status = Number(third); message = tail ?? null; }
        const cause = verb === 'hook-failed' ? 'hook' : causeOfMessage(message ?? '', 'builder');
        this.ledger.failed(source, drv!, status, message === '' ? null : message, cause, time);
        return EVENT;
      }
      case 'unsupported-platform': {
        if (!f[0]) return bad('@ unsupported-platform without a derivation');
        const source = this.shared('nix');
        this.ledger.failed(source, f[0], null, f[1] ? `a ${f[1]} machine is required` : 'platform unsupported', 'unsupported', time);
        return EVENT;
      }
      case 'substituter-started':
      case 'substituter-succeeded':
      case 'substituter-failed': {
        if (!f[0]) return bad(`@ ${verb} without a store path`);
        const source = this.shared('nix');
        const type = verb === 'substituter-started' ? 'substitute-started' : verb === 'substituter-succeeded' ? 'substitute-succeeded' : 'substitute-failed';
        const substituter = type === 'substitute-started' ? opt(f[1]) : null;
        const message = type === 'substitute-failed' ? (f.slice(1).join(' ') || null) : null;
        this.emit({ type, time, source, path: f[0], substituter, message });
        return EVENT;
      }
      case 'download-started':
      case 'download-progress':
      case 'download-succeeded':
      case 'download-failed': {
        if (!f[0]) return bad(`@ ${verb} without an item`);
        const source = this.proved('guix');
        const size = num(f[2]);
        const done = verb === 'download-progress' ? num(f[3]) : verb === 'download-succeeded' ? size : verb === 'download-started' ? 0 : null;
        this.emit({ type: verb, time, source, path: f[0], url: opt(f[1]), done, expected: size });
        return EVENT;
      }
      case 'hash-mismatch': {
        if (!f[0]) return bad('@ hash-mismatch without a store path');
        this.emit({ type: 'hash-mismatch', time, source: this.proved('guix'), path: f[0], algo: opt(f[1]), expected: opt(f[2]), actual: opt(f[3]) });
        return EVENT;
      }
      case 'build-log': {
        const h = parseBuildLogHeader(rest);
        if (typeof h === 'string') return bad(h);
        this.proved('guix');
        return { kind: 'log', pid: h.pid, length: h.length };
      }
      default:
        // Every dialect writes `@ lowercase-verb`; a verb none of them has is kept, not dropped.
        if (/^[a-z][a-z0-9-]*$/.test(verb)) {
          this.emit({ type: 'unknown', time, source: this.shared('drover'), raw: line });
          return EVENT;
        }
        return PASS;
    }
  }
}
