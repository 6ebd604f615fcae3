// The words the human outputs (plain, tty, summary) use for builds, failures and times.
import type { FailureCause } from './events.js';
import { readLogTail } from './log-file.js';
import { formatDuration, printable } from './names.js';
import type { BuildInfo, Tracker } from './tracker.js';

const CAUSE_WORDS: Record<FailureCause, string> = {
  builder: 'builder failed',
  timeout: 'timed out',
  hook: 'build hook failed',
  dependency: 'a dependency failed',
  cached: 'failed before (cached failure)',
  unsupported: 'platform not supported here',
  'hash-mismatch': 'hash mismatch',
  interrupted: 'interrupted',
  cancelled: 'never started',
};

/** One line saying why a build failed. */
export function failureText(b: Pick<BuildInfo, 'cause' | 'status' | 'message'>): string {
  const cause = b.cause ?? 'builder';
  // A hash mismatch spreads "specified:" and "got:" over lines; those belong on its one line.
  const raw = printable((cause === 'hash-mismatch' ? b.message?.replace(/\s+/g, ' ') : b.message?.split('\n')[0])?.trim() ?? '');
  // The derivation is named already; "builder for '/nix/store/…drv' failed" says it twice.
  const first = raw.replace(/^builder for '[^']*' failed/, 'builder failed');
  if (cause === 'dependency' || cause === 'cancelled' || cause === 'interrupted') return CAUSE_WORDS[cause];
  if (cause === 'builder') return first || (b.status !== null ? `builder failed with status ${b.status}` : CAUSE_WORDS.builder);
  if (first && first !== cause) return first.includes(CAUSE_WORDS[cause]) ? first : `${CAUSE_WORDS[cause]}: ${first}`;
  return CAUSE_WORDS[cause];
}

/** A message of Nix's with the word for its level in front, once: Nix's own text mostly has it already. */
export function messageText(level: 'error' | 'warn', text: string): string {
  const word = level === 'warn' ? 'warning: ' : 'error: ';
  const shown = printable(text);
  return shown.startsWith(word) ? shown : word + shown;
}

export function clock(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60));
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

export function usuallyText(tracker: Tracker, b: BuildInfo): string {
  const u = tracker.usually(b.name);
  return u === null ? '' : `usually takes ${formatDuration(u)}`;
}

export function hostText(host: string | null): string {
  return host ?? 'local';
}

/**
 * The last lines of a build: from its log file when the trace named one that can be read (see
 * log-file.ts), else what the trace carried.
 */
export function logTail(b: BuildInfo, lines: number): { lines: string[]; from: string | null } {
  if (b.log && !/\.(bz2|gz|xz|zst)$/.test(b.log)) {
    const fromFile = readLogTail(b.log, b.drv, lines);
    if (fromFile) return { lines: fromFile, from: b.log };
  }
  return { lines: b.tail.slice(-lines), from: null };
}
