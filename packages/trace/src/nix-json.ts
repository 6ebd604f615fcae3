// Nix's `--log-format internal-json` (`@nix {…}`): activities (start/stop), their results, and messages.
import { isUtf8 as isUtf8Fn } from 'node:buffer';
import type { BuildLedger } from './build-ledger.js';
import { levelName, type FailureCause, type Source, type TraceEvent } from './events.js';
import { stripAnsi } from './names.js';
import type { TraceSink } from './sink.js';

/** Nix's ActivityType numbers (src/libutil/logging.hh). */
export const ACTIVITY_TYPES: Readonly<Record<number, string>> = {
  0: 'unknown', 100: 'copy-path', 101: 'file-transfer', 102: 'realise', 103: 'copy-paths', 104: 'builds',
  105: 'build', 106: 'optimise-store', 107: 'verify-paths', 108: 'substitute', 109: 'query-path-info',
  110: 'post-build-hook', 111: 'build-waiting',
};

/** Nix's ResultType numbers. */
export const RESULT_TYPES: Readonly<Record<number, string>> = {
  100: 'file-linked', 101: 'build-log-line', 102: 'untrusted-path', 103: 'corrupted-path', 104: 'set-phase',
  105: 'progress', 106: 'set-expected', 107: 'post-build-log-line',
};

const ACT_FILE_TRANSFER = 101;
const ACT_BUILDS = 104;
const ACT_BUILD = 105;
const ACT_SUBSTITUTE = 108;
const SOURCE: Source = 'nix-json';

interface Activity {
  id: string;
  type: number;
  parent: string | null;
  drv: string | null;
  path: string | null;
  url: string | null;
  substituter: string | null;
  failed: boolean;
  done: number | null;
  expected: number | null;
  /** Last progress fields emitted, so that Nix's many repeats of the same numbers make one event. */
  lastProgress: string;
  /** The derivation a log line of this activity belongs to, found once through its parents. */
  logDrv: string | null | undefined;
}

export type NixJsonResult = { ok: true } | { ok: false; why: string };
const OK: NixJsonResult = { ok: true };

// `@nix {"action":"result","fields":["` — nlohmann::json sorts keys, so Nix's log lines all start so.
const FAST_PREFIX = Buffer.from('@nix {"action":"result","fields":["');
const FAST_END = Buffer.from('"],"id":');
const FAST_TYPE = Buffer.from(',"type":101}');
/** Per byte inside a JSON string: 1 needs the full parser (escape, control character), 2 part of a UTF-8 sequence. */
const BYTE_FLAGS = new Uint8Array(256).map((_, c) => (c === 0x5c || c < 0x20 ? 1 : c >= 0x80 ? 2 : 0));

/**
 * The exact decimal digits of the integer at `"key":` (JSON numbers lose digits past 2^53): null when
 * the key is absent (or null), false when its value is no integer (`"7"`, `1.5`, `1e400`, `[]`), which
 * no activity id of Nix's is.
 */
function exactId(text: string, key: string, parsed: unknown): string | null | false {
  if (parsed === undefined || parsed === null) return null;
  if (typeof parsed !== 'number' || !Number.isInteger(parsed)) return false;
  if (Number.isSafeInteger(parsed)) return String(parsed);
  // Inside a JSON string a quote is always escaped, so `,"id":` / `{"id":` can only be a key; of
  // several (a repeated key, a nested object), the one JSON.parse kept is the last with this value.
  // The digits must be the whole number: `1e400` or `1.5` is no id `1`.
  let exact: string | null = null;
  for (const m of text.matchAll(new RegExp(`[{,]\\s*"${key}"\\s*:\\s*(-?\\d+)(?=\\s*[,}])`, 'g'))) {
    if (Number(m[1]) === parsed) exact = m[1]!;
  }
  return exact ?? BigInt(parsed).toString();
}

const DRV_IN_QUOTES = /'([^']+\.drv)'/;
/**
 * A quoted derivation in an error, as Nix 2.8 names it in some: a derived path (`'/…-x.drv!out'`,
 * `'/…-x.drv!*'`), followed by `from .drv file`; older Nix has the bare `'/…-x.drv'`.
 */
const QUOTED_DRV = String.raw`'([^'!]+\.drv)(?:![^']*)?'(?: from \.drv file)?`;
const TIMED_OUT = new RegExp(`^(?:building of )?${QUOTED_DRV} timed out after`);
const REMOTE_FAILED = new RegExp(`^build of ${QUOTED_DRV} on '[^']*' failed`);

export class NixJson {
  private readonly activities = new Map<string, Activity>();
  /** Builds finished successfully according to Nix's progress counter but not yet stopped. */
  private doneCredit = 0;
  private buildsProgressSeen = false;
  private readonly buildsDone = new Map<string, number>();
  /** Inside a "these N derivations will be built:" list (one message per derivation). */
  private planning = false;
  private viewOf: Buffer | null = null;
  private viewBase = 0;
  private view: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
  /** The activity of the last fast-path log line, and its id's digits, as bytes and as text. */
  private lastLogAct: Activity | undefined = undefined;
  private lastLogId: Buffer = Buffer.alloc(0);
  private lastLogIdText = '';

  constructor(private readonly ledger: BuildLedger, private readonly emit: (ev: TraceEvent) => void) {}

  /**
   * The fast path for the line most of a log is made of: a build log line with nothing to escape.
   * Returns false when the line needs the general parser.
   */
  fastLogLine(buf: Buffer, start: number, end: number, time: number, sink: TraceSink): boolean {
    if (end - start < FAST_PREFIX.length + FAST_END.length + FAST_TYPE.length + 1) return false;
    for (let i = 5; i < FAST_PREFIX.length; i++) if (buf[start + i] !== FAST_PREFIX[i]) return false;
    const textStart = start + FAST_PREFIX.length;
    // The closing quote is found natively; the text before it must need no escapes (flags 1) and is
    // checked for UTF-8 only when it has bytes above ASCII (flags 2).
    const textEnd = buf.indexOf(0x22, textStart);
    if (textEnd < 0 || textEnd >= end) return false;
    const flags = this.textFlags(buf, textStart, textEnd);
    if (flags & 1) return false;
    const high = flags & 2;
    if (textEnd + FAST_END.length >= end) return false;
    for (let k = 0; k < FAST_END.length; k++) if (buf[textEnd + k] !== FAST_END[k]) return false;
    let p = textEnd + FAST_END.length;
    const idStart = p;
    while (p < end && buf[p]! >= 0x30 && buf[p]! <= 0x39) p++;
    if (p === idStart || p - idStart > 20) return false;
    const idEnd = p;
    let lineEnd = end;
    if (buf[lineEnd - 1] === 0x0d) lineEnd--;
    if (lineEnd - p !== FAST_TYPE.length) return false;
    for (let k = 0; k < FAST_TYPE.length; k++) if (buf[p + k] !== FAST_TYPE[k]) return false;
    if (high !== 0 && !isUtf8Range(buf, textStart, textEnd)) return false;
    // Consecutive lines mostly come from one activity: compare its id's digits before making a string.
    let act = this.lastLogAct;
    const last = this.lastLogId;
    let same = act !== undefined && idEnd - idStart === last.length;
    for (let k = 0; same && k < last.length; k++) if (buf[idStart + k] !== last[k]) same = false;
    if (!same) {
      this.lastLogIdText = buf.toString('latin1', idStart, idEnd);
      act = this.activities.get(this.lastLogIdText);
      this.lastLogAct = act;
      this.lastLogId = Buffer.from(buf.subarray(idStart, idEnd));
    }
    const drv = act ? this.logDrvOf(act) : null;
    const activity = this.lastLogIdText;
    if (sink.rawLog) sink.rawLog(SOURCE, activity, drv, null, buf, textStart, textEnd, time, true);
    else this.emit({ type: 'build-log', time, source: SOURCE, activity, drv, pid: null, text: buf.toString('utf8', textStart, textEnd) + '\n' });
    return true;
  }

  /** Flags of BYTE_FLAGS over buf[start, end), four bytes at a time through a view made once per buffer. */
  private textFlags(buf: Buffer, start: number, end: number): number {
    if (buf !== this.viewOf) {
      this.viewOf = buf;
      this.viewBase = (4 - (buf.byteOffset & 3)) & 3;
      this.view = new Uint32Array(buf.buffer, buf.byteOffset + this.viewBase, Math.max(0, (buf.length - this.viewBase) >>> 2));
    }
    const base = this.viewBase;
    let flags = 0;
    let i = start;
    const head = Math.min(end, start + ((base - start) & 3));
    for (; i < head; i++) flags |= BYTE_FLAGS[buf[i]!]!;
    const view = this.view;
    let k = (i - base) >>> 2;
    const stop = (end - base) >>> 2;
    for (; k < stop; k++) {
      const w = view[k]!;
      const slash = w ^ 0x5c5c5c5c;
      // A byte < 0x20 or == '\\' needs the parser; one >= 0x80 needs a UTF-8 check.
      if ((((w - 0x20202020) & ~w) | ((slash - 0x01010101) & ~slash)) & 0x80808080) return 1;
      if (w & 0x80808080) flags = 2;
    }
    for (i = Math.max(i, base + (stop << 2)); i < end; i++) flags |= BYTE_FLAGS[buf[i]!]!;
    return flags;
  }

  /** One `@nix ` line without its newline (text starts after the prefix). */
  line(text: string, time: number): NixJsonResult {
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      return { ok: false, why: `invalid JSON after @nix: ${(e as Error).message}` };
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return { ok: false, why: '@nix line is not a JSON object' };
    const o = obj as Record<string, unknown>;
    switch (o['action']) {
      case 'start': return this.start(o, text, time);
      case 'stop': return this.stop(o, text, time);
      case 'result': return this.result(o, text, time);
      case 'msg': return this.msg(o, time);
      case undefined: return { ok: false, why: '@nix object without "action"' };
      default:
        this.emit({ type: 'unknown', time, source: SOURCE, raw: '@nix ' + text });
        return OK;
    }
  }

  private logDrvOf(act: Activity): string | null {
    if (act.logDrv !== undefined) return act.logDrv;
    let a: Activity | undefined = act;
    let guard = 0;
    while (a && a.drv === null && a.parent !== null && guard++ < 64) a = this.activities.get(a.parent);
    act.logDrv = a?.drv ?? null;
    return act.logDrv;
  }

  /** The store path a download or copy is for: its own, or that of the substitution it belongs to. */
  private pathOf(act: Activity): string | null {
    let a: Activity | undefined = act;
    let guard = 0;
    while (a && a.path === null && a.parent !== null && guard++ < 64) a = this.activities.get(a.parent);
    return a?.path ?? null;
  }

  private start(o: Record<string, unknown>, text: string, time: number): NixJsonResult {
    const id = exactId(text, 'id', o['id']);
    if (id === null) return { ok: false, why: '@nix start without "id"' };
    if (id === false) return { ok: false, why: '@nix start with an "id" that is not an integer' };
    const parent = exactId(text, 'parent', o['parent']);
    const type = typeof o['type'] === 'number' ? o['type'] : -1;
    const fields = Array.isArray(o['fields']) ? o['fields'] : [];
    const str = (i: number): string | null => (typeof fields[i] === 'string' && fields[i] !== '' ? fields[i] : null);
    const act: Activity = {
      id, type, parent: parent === false ? null : parent, drv: null, path: null, url: null, substituter: null,
      failed: false, done: null, expected: null, lastProgress: '', logDrv: undefined,
    };
    if (act.parent === '0') act.parent = null;
    this.activities.set(id, act);
    const activityText = typeof o['text'] === 'string' ? stripAnsi(o['text']) : '';
    switch (type) {
      case ACT_BUILD: {
        act.drv = str(0) ?? DRV_IN_QUOTES.exec(activityText)?.[1] ?? null;
        if (act.drv === null) return { ok: false, why: '@nix build activity without a derivation' };
        this.planning = false;
        this.ledger.started({ type: 'build-started', time, source: SOURCE, activity: id, drv: act.drv, out: null, system: null, log: null, pid: null, host: str(1) });
        return OK;
      }
      case ACT_SUBSTITUTE:
        act.path = str(0);
        act.substituter = str(1);
        if (act.path !== null) this.emit({ type: 'substitute-started', time, source: SOURCE, activity: id, path: act.path, substituter: act.substituter, message: null });
        return OK;
      case ACT_FILE_TRANSFER:
        act.url = str(0);
        this.emit({ type: 'download-started', time, source: SOURCE, activity: id, path: this.pathOf(act), url: act.url, done: null, expected: null });
        return OK;
      default:
        if (!(type in ACTIVITY_TYPES)) {
          this.emit({ type: 'unknown', time, source: SOURCE, activity: id, raw: '@nix ' + text });
        } else if (activityText !== '' && typeof o['level'] === 'number' && o['level'] <= 3) {
          this.emit({ type: 'message', time, source: SOURCE, activity: id, level: levelName(o['level']), text: activityText });
        }
        return OK;
    }
  }

  private stop(o: Record<string, unknown>, text: string, time: number): NixJsonResult {
    const id = exactId(text, 'id', o['id']);
    if (id === null) return { ok: false, why: '@nix stop without "id"' };
    if (id === false) return { ok: false, why: '@nix stop with an "id" that is not an integer' };
    const act = this.activities.get(id);
    if (!act) return OK;
    this.activities.delete(id);
    if (this.lastLogAct === act) this.lastLogAct = undefined;
    if (act.type === ACT_BUILD && act.drv !== null && this.ledger.isRunning(act.drv)) {
      // Without --keep-going Nix stops the builds still running when one fails; only its progress
      // counter tells those from builds that succeeded.
      if (!this.buildsProgressSeen || this.doneCredit > 0) {
        if (this.doneCredit > 0) this.doneCredit--;
        this.ledger.succeeded(SOURCE, act.drv, null, time, id);
      } else {
        this.ledger.failed(SOURCE, act.drv, null, 'stopped before it finished', 'interrupted', time, id);
      }
    } else if (act.type === ACT_SUBSTITUTE && act.path !== null && !act.failed) {
      this.emit({ type: 'substitute-succeeded', time, source: SOURCE, activity: id, path: act.path, substituter: act.substituter, message: null });
    } else if (act.type === ACT_FILE_TRANSFER && !act.failed) {
      this.emit({ type: 'download-succeeded', time, source: SOURCE, activity: id, path: this.pathOf(act), url: act.url, done: act.done, expected: act.expected });
    } else if (act.type === ACT_BUILDS) {
      this.buildsDone.delete(id);
    }
    return OK;
  }

  private result(o: Record<string, unknown>, text: string, time: number): NixJsonResult {
    const id = exactId(text, 'id', o['id']);
    if (id === null) return { ok: false, why: '@nix result without "id"' };
    if (id === false) return { ok: false, why: '@nix result with an "id" that is not an integer' };
    const type = o['type'];
    const fields = Array.isArray(o['fields']) ? o['fields'] : [];
    const act = this.activities.get(id);
    const n = (i: number): number | null => (typeof fields[i] === 'number' ? fields[i] : null);
    switch (type) {
      case 101:
      case 107: {
        if (typeof fields[0] !== 'string') return { ok: false, why: '@nix log line without text' };
        this.emit({ type: 'build-log', time, source: SOURCE, activity: id, drv: act ? this.logDrvOf(act) : null, pid: null, text: fields[0] + '\n' });
        return OK;
      }
      case 104: {
        const phase = typeof fields[0] === 'string' ? fields[0] : null;
        if (phase === null) return { ok: false, why: '@nix set-phase without a phase' };
        this.emit({ type: 'build-phase', time, source: SOURCE, activity: id, drv: act ? this.logDrvOf(act) : null, phase });
        return OK;
      }
      case 105: {
        const [done, expected, running, failed] = [n(0), n(1), n(2), n(3)];
        // Only the numbers shown count (and fields may hold anything: joining nested arrays recurses).
        const key = `${done},${expected},${running},${failed}`;
        if (act && act.lastProgress === key) return OK;
        if (act) act.lastProgress = key;
        if (act?.type === ACT_BUILDS) {
          this.buildsProgressSeen = true;
          const before = this.buildsDone.get(id) ?? 0;
          if (done !== null && done > before) this.doneCredit += done - before;
          if (done !== null) this.buildsDone.set(id, done);
        }
        if (act?.type === ACT_FILE_TRANSFER) {
          act.done = done;
          act.expected = expected;
          this.emit({ type: 'download-progress', time, source: SOURCE, activity: id, path: this.pathOf(act), url: act.url, done, expected });
          return OK;
        }
        const what = act ? (ACTIVITY_TYPES[act.type] ?? String(act.type)) : 'unknown';
        this.emit({ type: 'progress', time, source: SOURCE, activity: id, what, done, expected, running, failed });
        return OK;
      }
      case 106: {
        const kind = n(0);
        const key = `expected:${kind}:${n(1)}`;
        if (act && act.lastProgress === key) return OK;
        if (act) act.lastProgress = key;
        const what = kind !== null ? (ACTIVITY_TYPES[kind] ?? String(kind)) : 'unknown';
        this.emit({ type: 'progress', time, source: SOURCE, activity: id, what, done: null, expected: n(1), running: null, failed: null });
        return OK;
      }
      case 100:
        return OK;
      case 102:
      case 103: {
        const path = typeof fields[0] === 'string' ? fields[0] : '?';
        const textOut = stripAnsi(type === 102 ? `untrusted path ${path}` : `corrupted path ${path}`);
        this.emit({ type: 'message', time, source: SOURCE, activity: id, level: type === 102 ? 'warn' : 'error', text: textOut });
        return OK;
      }
      default:
        this.emit({ type: 'unknown', time, source: SOURCE, activity: id, raw: '@nix ' + text });
        return OK;
    }
  }

  private msg(o: Record<string, unknown>, time: number): NixJsonResult {
    if (typeof o['msg'] !== 'string') return { ok: false, why: '@nix msg without "msg"' };
    const level = typeof o['level'] === 'number' ? o['level'] : 0;
    const text = stripAnsi(o['msg']);
    // `nix-build -v` lists the plan as one message per derivation after a header.
    if (/^(these \d+ derivations|this derivation) will be built:$/.test(text)) {
      this.planning = true;
      return OK;
    }
    if (this.planning) {
      const m = /^ {2}(\S+\.drv)$/.exec(text);
      if (m) {
        this.ledger.queue(SOURCE, m[1]!, time);
        return OK;
      }
      this.planning = false;
    }
    if (level === 0 && this.failure(text, time)) return OK;
    this.emit({ type: 'message', time, source: SOURCE, level: levelName(level), text });
    return OK;
  }

  /** Nix 2.x reports a failed build only as an error message; these are the ones that name a derivation. */
  private failure(text: string, time: number): boolean {
    const body = text.replace(/^error: /, '');
    let m: RegExpExecArray | null;
    let drv: string | null = null;
    let status: number | null = null;
    let cause: FailureCause | null = null;
    if ((m = /^builder for '([^']+)' failed with exit code (-?\d+)/.exec(body))) {
      [drv, status, cause] = [m[1]!, Number(m[2]), 'builder'];
    } else if ((m = /^builder for '([^']+)' failed/.exec(body))) {
      [drv, cause] = [m[1]!, 'builder'];
    } else if ((m = /^hash mismatch in fixed-output derivation '([^']+)'/.exec(body))) {
      [drv, cause] = [m[1]!, 'hash-mismatch'];
    } else if ((m = /^\d+ dependencies of derivation '([^']+)' failed to build/.exec(body)) ||
               (m = /^cannot build derivation '([^']+)': \d+ dependencies couldn't be built/.exec(body))) {
      [drv, cause] = [m[1]!, 'dependency'];
    } else if ((m = TIMED_OUT.exec(body)) || (m = /^(\S+\.drv) timed out after/.exec(body))) {
      [drv, cause] = [m[1]!, 'timeout'];
    } else if ((m = /is required to build '([^']+)', but I am a/.exec(body))) {
      [drv, cause] = [m[1]!, 'unsupported'];
    } else if ((m = REMOTE_FAILED.exec(body))) {
      [drv, cause] = [m[1]!, 'builder'];
    }
    if (drv === null || cause === null) return false;
    for (const act of this.activities.values()) if (act.type === ACT_BUILD && act.drv === drv) act.failed = true;
    if (this.ledger.failed(SOURCE, drv, status, body, cause, time)) return true;
    // Already failed: a repeat of what its failure says is dropped, anything else is still shown.
    return this.ledger.failureOf(drv)?.message === body;
  }
}

function isUtf8Range(buf: Buffer, start: number, end: number): boolean {
  return isUtf8Fn(buf.subarray(start, end));
}
