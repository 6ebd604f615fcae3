// Text from outside the hook (a remote's words, ssh's log, a state file) made safe to print among its own lines.
//
// The hook's stderr is a protocol stream: the scheduler takes a line starting with `# ` as
// the hook's reply and passes the others to the user's stderr, where `@ ` lines are trace
// events (drover-trace reads them). A remote's error message holding "\n@ build-succeeded …"
// or "\n# accept" must not become such a line, and escape sequences must not reach a terminal.

/**
 * `s` with control characters (escape, carriage return, NUL, C1; tab aside) shown as `?`, and
 * every line after the first indented by two spaces, so no line of it can pass for a reply
 * or a trace line.
 */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s
    .replace(/\r\n?/g, '\n')
    .replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, '?')
    .replace(/\n/g, '\n  ');
}

/** `printable` on one line: line breaks become `; ` (a table cell, a status line). */
export function printableLine(s: string): string {
  return printable(s.trim().replace(/\s*\n\s*/g, '; '));
}
