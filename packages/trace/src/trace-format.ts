// The drover trace line grammar (`drover-build --print-build-trace`): parse and format its five lines.
//
//   @ build-started DRV OUT SYSTEM LOGFILE
//   @ build-remote DRV HOST
//   @ build-succeeded DRV OUT
//   @ build-failed DRV OUT STATUS MESSAGE
//   @ hook-failed DRV OUT STATUS MESSAGE
//
// Fields are single-space separated; MESSAGE runs to the end of the line. The same grammar is Nix 0.16's.

export type DroverTraceLine =
  | { verb: 'build-started'; drv: string; out: string; system: string; log: string }
  | { verb: 'build-remote'; drv: string; host: string }
  | { verb: 'build-succeeded'; drv: string; out: string }
  | { verb: 'build-failed'; drv: string; out: string; status: number; message: string }
  | { verb: 'hook-failed'; drv: string; out: string; status: number; message: string };

export type DroverVerb = DroverTraceLine['verb'];

export const DROVER_VERBS: readonly DroverVerb[] = ['build-started', 'build-remote', 'build-succeeded', 'build-failed', 'hook-failed'];

export class TraceFormatError extends Error {}

function field(name: string, value: string): string {
  // A field with a space or newline would shift every field after it for the reader.
  if (value === '' || /[\s]/.test(value)) {
    throw new TraceFormatError(`trace field ${name} must be a non-empty word, got ${JSON.stringify(value)}`);
  }
  return value;
}

function statusField(status: number): string {
  if (!Number.isInteger(status)) throw new TraceFormatError(`trace field STATUS must be an integer, got ${status}`);
  return String(status);
}

/** One trace line, with its final newline. MESSAGE is folded onto one line. */
export function formatTraceLine(line: DroverTraceLine): string {
  const drv = field('DRV', line.drv);
  switch (line.verb) {
    case 'build-started':
      return `@ build-started ${drv} ${field('OUT', line.out)} ${field('SYSTEM', line.system)} ${field('LOGFILE', line.log)}\n`;
    case 'build-remote':
      return `@ build-remote ${drv} ${field('HOST', line.host)}\n`;
    case 'build-succeeded':
      return `@ build-succeeded ${drv} ${field('OUT', line.out)}\n`;
    case 'build-failed':
    case 'hook-failed':
      return `@ ${line.verb} ${drv} ${field('OUT', line.out)} ${statusField(line.status)} ${line.message.replace(/\r?\n|\r/g, ' ')}\n`;
  }
}

export const formatBuildStarted = (drv: string, out: string, system: string, log: string): string =>
  formatTraceLine({ verb: 'build-started', drv, out, system, log });
export const formatBuildRemote = (drv: string, host: string): string =>
  formatTraceLine({ verb: 'build-remote', drv, host });
export const formatBuildSucceeded = (drv: string, out: string): string =>
  formatTraceLine({ verb: 'build-succeeded', drv, out });
export const formatBuildFailed = (drv: string, out: string, status: number, message: string): string =>
  formatTraceLine({ verb: 'build-failed', drv, out, status, message });
export const formatHookFailed = (drv: string, out: string, status: number, message: string): string =>
  formatTraceLine({ verb: 'hook-failed', drv, out, status, message });

/** Splits `@ VERB REST` (no newline) into verb and rest; null when the line is not an `@ ` line. */
export function splitAtLine(line: string): { verb: string; rest: string } | null {
  if (!line.startsWith('@ ')) return null;
  const sp = line.indexOf(' ', 2);
  return sp < 0 ? { verb: line.slice(2), rest: '' } : { verb: line.slice(2, sp), rest: line.slice(sp + 1) };
}

/**
 * Parses one line (without its newline) of exactly drover's grammar; null for anything else,
 * including the Nix 1.x and Guix variants, which other modules read.
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
