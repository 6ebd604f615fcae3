// Carries a lone `-` ("read the list from stdin") through yargs, which drops it from positionals,
// and the operands after `--`, which yargs leaves out of the positionals (`query A -- B` would
// answer for A alone, as if B had not been given).
const DASH = '\u0000drover-stdin';
/** Marks a word that came after `--`: a positional, whatever it looks like. */
const OPERAND = '\u0000drover-operand:';

/** Hides each lone `-` before `--` from yargs' parser, and turns the words after it into plain positionals. */
export function protectDash(args: readonly string[]): string[] {
  const end = args.indexOf('--');
  const before = end < 0 ? args : args.slice(0, end);
  const after = end < 0 ? [] : args.slice(end + 1);
  return [...before.map((a) => (a === '-' ? DASH : a)), ...after.map((a) => OPERAND + a)];
}

/** yargs middleware: gives back what protectDash hid, in positionals and options alike. */
export function restoreDash(argv: Record<string, unknown>): void {
  const restore = (v: unknown) => (v === DASH ? '-' : typeof v === 'string' && v.startsWith(OPERAND) ? v.slice(OPERAND.length) : v);
  for (const [k, v] of Object.entries(argv)) argv[k] = Array.isArray(v) ? v.map(restore) : restore(v);
}
