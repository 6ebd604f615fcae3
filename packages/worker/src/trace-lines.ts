// The five trace lines drover-build prints with --print-build-trace (DESIGN.md "Trace lines").
//
// packages/trace owns the reader of this grammar; the writer lives here so that the
// scheduler does not depend on the renderer. Fields are single words; MESSAGE runs to the
// end of the line, so it is folded onto one line.

/** A field must stay one word, or every field after it would shift for the reader. */
function word(s: string): string {
  return s === '' ? '-' : s.replace(/\s/g, '_');
}

function oneLine(s: string): string {
  return s.replace(/\r?\n|\r/g, ' ').trim();
}

export function buildStartedLine(drv: string, out: string, system: string, logFile: string): string {
  return `@ build-started ${word(drv)} ${word(out)} ${word(system)} ${word(logFile)}\n`;
}

export function buildRemoteLine(drv: string, host: string): string {
  return `@ build-remote ${word(drv)} ${word(host)}\n`;
}

export function buildSucceededLine(drv: string, out: string): string {
  return `@ build-succeeded ${word(drv)} ${word(out)}\n`;
}

export function buildFailedLine(drv: string, out: string, status: number, message: string): string {
  return `@ build-failed ${word(drv)} ${word(out)} ${Math.trunc(status)} ${oneLine(message)}\n`;
}

export function hookFailedLine(drv: string, out: string, status: number, message: string): string {
  return `@ hook-failed ${word(drv)} ${word(out)} ${Math.trunc(status)} ${oneLine(message)}\n`;
}
