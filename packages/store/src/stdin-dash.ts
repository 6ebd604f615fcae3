// Carries a lone `-` ("read the list from stdin") through yargs, which drops it from positionals.
const DASH = '\u0000drover-stdin';

/** Hides each lone `-` before `--` from yargs' parser. */
export function protectDash(args: readonly string[]): string[] {
  const end = args.indexOf('--');
  return args.map((a, i) => (a === '-' && (end < 0 || i < end) ? DASH : a));
}

/** yargs middleware: gives back the `-` that protectDash hid, in positionals and options alike. */
export function restoreDash(argv: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(argv)) {
    if (v === DASH) argv[k] = '-';
    else if (Array.isArray(v) && v.includes(DASH)) argv[k] = v.map((x) => (x === DASH ? '-' : x));
  }
}
