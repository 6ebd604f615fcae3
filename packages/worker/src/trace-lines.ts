// The drover trace line grammar (DESIGN.md "Trace lines"): drover-build writes it, drover-trace and
// drover-hook-ssh import it from here, so producer and readers cannot drift apart.
//
//   @ build-started DRV OUT SYSTEM LOGFILE
//   @ build-remote DRV HOST
//   @ build-succeeded DRV OUT
//   @ build-failed DRV OUT STATUS MESSAGE
//   @ hook-failed DRV OUT STATUS MESSAGE
//
// Fields are single-space separated words; MESSAGE runs to the end of the line. The same
// grammar is Nix 0.16's.

export type DroverTraceLine =
  | { verb: 'build-started'; drv: string; out: string; system: string; log: string }
  | { verb: 'build-remote'; drv: string; host: string }
  | { verb: 'build-succeeded'; drv: string; out: string }
  | { verb: 'build-failed'; drv: string; out: string; status: number; message: string }
  | { verb: 'hook-failed'; drv: string; out: string; status: number; message: string };

export type DroverVerb = DroverTraceLine['verb'];

export const DROVER_VERBS: readonly DroverVerb[] = ['build-started', 'build-remote', 'build-succeeded', 'build-failed', 'hook-failed'];

/**
 * A field must stay one word, or every field after it would shift for the reader: the
 * writer folds whitespace to `_` and writes `-` for nothing rather than fail a build over
 * its trace.
 */
function word(s: string): string {
  return s === '' ? '-' : s.replace(/\s/g, '_');
}

/** A free-text field: one line, and no control character (an escape sequence would reach a terminal). */
function oneLine(s: string): string {
  return s
    .replace(/\r?\n|\r/g, ' ')
    .replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, '?')
    .trim();
}

/** One trace line, with its final newline. */
export function formatTraceLine(line: DroverTraceLine): string {
  const drv = word(line.drv);
  switch (line.verb) {
    case 'build-started':
      return `@ build-started ${drv} ${word(line.out)} ${word(line.system)} ${word(line.log)}\n`;
    case 'build-remote':
      return `@ build-remote ${drv} ${word(line.host)}\n`;
    case 'build-succeeded':
      return `@ build-succeeded ${drv} ${word(line.out)}\n`;
    case 'build-failed':
    case 'hook-failed':
      return `@ ${line.verb} ${drv} ${word(line.out)} ${Math.trunc(line.status)} ${oneLine(line.message)}\n`;
  }
}

export const buildStartedLine = (drv: string, out: string, system: string, log: string): string =>
  formatTraceLine({ verb: 'build-started', drv, out, system, log });
export const buildRemoteLine = (drv: string, host: string): string => formatTraceLine({ verb: 'build-remote', drv, host });
export const buildSucceededLine = (drv: string, out: string): string => formatTraceLine({ verb: 'build-succeeded', drv, out });
export const buildFailedLine = (drv: string, out: string, status: number, message: string): string =>
  formatTraceLine({ verb: 'build-failed', drv, out, status, message });
export const hookFailedLine = (drv: string, out: string, status: number, message: string): string =>
  formatTraceLine({ verb: 'hook-failed', drv, out, status, message });

/** Splits `@ VERB REST` (no newline) into verb and rest; null when the line is not an `@ ` line. */
export function splitAtLine(line: string): { verb: string; rest: string } | null {
  if (!line.startsWith('@ ')) return null;
  const sp = line.indexOf(' ', 2);
  return sp < 0 ? { verb: line.slice(2), rest: '' } : { verb: line.slice(2, sp), rest: line.slice(sp + 1) };
}

/**
 * Parses one line (without its newline) of exactly drover's grammar; null for anything else,
 * including the Nix 1.x and Guix variants, which drover-trace reads with its own modules.
 */
export function parseTraceLine(line: string): DroverTraceLine | null {
  const at = splitAtLine(line);
  if (!at) return null;
  const { verb, rest } = at;
  switch (verb) {
    case 'build-started': {
      const f = rest.split(' ');
      if (f.length !== 4 || f.some((x) => x === '') || f[1] === '-') return null;
      return { verb, drv: f[0]!, out: f[1]!, system: f[2]!, log: f[3]! };
    }
    case 'build-remote': {
      const f = rest.split(' ');
      if (f.length !== 2 || f.some((x) => x === '')) return null;
      return { verb, drv: f[0]!, host: f[1]! };
    }
    case 'build-succeeded': {
      const f = rest.split(' ');
      if (f.length !== 2 || f.some((x) => x === '') || f[1] === '-') return null;
      return { verb, drv: f[0]!, out: f[1]! };
    }
    case 'build-failed':
    case 'hook-failed': {
      const m = /^(\S+) (\S+) (-?\d+) ?(.*)$/s.exec(rest);
      if (!m || m[2] === '-') return null;
      return { verb, drv: m[1]!, out: m[2]!, status: Number(m[3]), message: m[4]! };
    }
    default:
      return null;
  }
}
