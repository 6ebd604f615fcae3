// drover-build's options, declared once, and the two ways argv is parsed from them.
//
// yargs gives the help text and the error messages; loading it costs ~65 ms, a fifth of
// what a no-op run over 5,000 derivations may take. So plain command lines (no --help, no
// list options, nothing node:util's parseArgs rejects) are parsed by parseArgs from the
// same table, and yargs is loaded only for everything else.
import { parseArgs } from 'node:util';
import { UsageError, yargsFailure } from '@drover/store';
import type { BuildFlags } from './options.js';

interface Opt {
  name: string;
  alias?: string;
  type: 'number' | 'boolean' | 'string' | 'array';
  choices?: string[];
  describe: string;
  /** The BuildFlags field it fills. */
  key: keyof BuildFlags | 'storeDir' | 'stateDir';
}

export const OPTIONS: readonly Opt[] = [
  { name: 'max-jobs', alias: 'j', type: 'number', key: 'maxJobs', describe: 'local build slots (0: only through the hook) [default: cores]' },
  { name: 'keep-going', alias: 'k', type: 'boolean', key: 'keepGoing', describe: 'go on with independent builds after a failure' },
  { name: 'dry-run', type: 'boolean', key: 'dryRun', describe: 'show what would be built and what is valid, build nothing' },
  { name: 'max-silent-time', type: 'number', key: 'maxSilentTime', describe: 'kill a build silent this many seconds (0: never)' },
  { name: 'timeout', type: 'number', key: 'timeout', describe: 'kill a build running this many seconds (0: never)' },
  { name: 'build-hook', type: 'string', key: 'buildHook', describe: 'hook program (and arguments) to hand builds to [env DROVER_BUILD_HOOK]' },
  { name: 'hook-timeout', type: 'number', key: 'hookTimeout', describe: 'seconds to wait for the hook to answer a request [default: 300]' },
  { name: 'hook-requests', type: 'number', key: 'hookRequests', describe: 'hook requests in flight at once, each to its own hook process [env DROVER_HOOK_REQUESTS] [default: 4]' },
  { name: 'print-build-trace', type: 'boolean', key: 'printBuildTrace', describe: 'print @ trace lines on stderr' },
  { name: 'print-build-logs', alias: 'L', type: 'boolean', key: 'printBuildLogs', describe: 'stream build logs to stderr, prefixed with the name' },
  { name: 'sandbox', type: 'string', choices: ['auto', 'bwrap', 'none'], key: 'sandbox', describe: 'sandbox builds with bubblewrap [env DROVER_SANDBOX] [default: auto]' },
  { name: 'sandbox-paths', type: 'array', key: 'sandboxPaths', describe: 'host paths visible read-only in the sandbox, PATH or TARGET=SOURCE (replaces the default)' },
  { name: 'extra-sandbox-paths', type: 'array', key: 'extraSandboxPaths', describe: 'host paths added to the sandbox paths' },
  { name: 'cache-failures', type: 'boolean', key: 'cacheFailures', describe: 'remember permanent failures and do not retry them' },
  { name: 'cores', type: 'number', key: 'cores', describe: 'NIX_BUILD_CORES given to builders [default: cores]' },
  { name: 'keep-failed', alias: 'K', type: 'boolean', key: 'keepFailed', describe: 'keep the build dirs of failed builds' },
  { name: 'system', type: 'string', key: 'system', describe: "this machine's system type [default: e.g. x86_64-linux]" },
  { name: 'system-features', type: 'array', key: 'systemFeatures', describe: 'features this machine offers [default: benchmark big-parallel nixos-test (kvm)]' },
  { name: 'store-dir', type: 'string', key: 'storeDir', describe: 'store dir [env DROVER_STORE_DIR]' },
  { name: 'state-dir', type: 'string', key: 'stateDir', describe: 'state dir [env DROVER_STATE_DIR]' },
];

export const USAGE =
  '$0 [options] (DRV...|-)\n\nRealises derivations: builds what is not valid yet (locally, sandboxed, or through a build hook) and prints the output paths, one per line.';

export interface ParsedArgs {
  flags: BuildFlags;
  storeDir?: string;
  stateDir?: string;
  drvs: string[];
}

type Values = Record<string, unknown>;

function toParsed(values: Values, positionals: readonly (string | number)[]): ParsedArgs {
  const flags: Record<string, unknown> = {};
  let storeDir: string | undefined;
  let stateDir: string | undefined;
  for (const o of OPTIONS) {
    let v = values[o.name];
    if (v === undefined) continue;
    // A flag given twice: the last one wins, as in most tools (lists keep every value).
    if (Array.isArray(v) && o.type !== 'array') v = v[v.length - 1];
    if (o.type === 'number' && typeof v !== 'number') {
      // Name what was typed: Number('abc') would reach the checks as NaN.
      if (!/^\s*-?\d+(\.\d+)?\s*$/.test(String(v))) throw new UsageError(`--${o.name} must be a number, got '${String(v)}'`);
      v = Number(v);
    }
    if (o.type === 'array') v = (Array.isArray(v) ? v : [v]).map(String);
    if (o.choices && !o.choices.includes(String(v))) throw new UsageError(`--${o.name} must be one of ${o.choices.join(', ')}, got '${String(v)}'`);
    if (o.key === 'storeDir') storeDir = String(v);
    else if (o.key === 'stateDir') stateDir = String(v);
    else flags[o.key] = v;
  }
  return { flags: flags as BuildFlags, storeDir, stateDir, drvs: positionals.map(String) };
}

/** The fast path; undefined when the command line needs yargs (help, lists, anything unusual). */
export function parseFast(argv: readonly string[]): ParsedArgs | undefined {
  const listFlags = new Set(OPTIONS.filter((o) => o.type === 'array').map((o) => `--${o.name}`));
  if (argv.some((a) => a === '--help' || a === '-h' || listFlags.has(a.split('=')[0]!))) return undefined;
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const o of OPTIONS) {
    if (o.type === 'array') continue;
    options[o.name] = { type: o.type === 'boolean' ? 'boolean' : 'string', ...(o.alias ? { short: o.alias } : {}), ...(o.type === 'boolean' ? {} : { multiple: true }) };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch {
    return undefined;
  }
  // Outside the try: a bad value is the user's error to hear about, not yargs' to parse again.
  return toParsed(parsed.values as Values, parsed.positionals);
}

/** The full parse with yargs: --help, list options, and its error messages. */
export async function parseWithYargs(argv: readonly string[]): Promise<ParsedArgs> {
  const { default: yargs } = await import('yargs');
  let y = yargs([...argv])
    .scriptName('drover-build')
    .usage(USAGE)
    .strictOptions()
    .help()
    .version(false)
    .fail(yargsFailure)
    .wrap(Math.min(100, process.stdout.columns ?? 100));
  for (const o of OPTIONS) {
    y = y.option(o.name, {
      // Numbers are left untyped: yargs still reads '12' as 12, but passes 'abc' as typed, so
      // that the error can quote it (with type number it would pass NaN).
      ...(o.type === 'number' ? { requiresArg: true } : { type: o.type }),
      // A string option with nothing after it would be '' (an empty --store-dir is the cwd).
      ...(o.type === 'string' ? { requiresArg: true } : {}),
      describe: o.describe,
      ...(o.alias ? { alias: o.alias } : {}),
      ...(o.choices ? { choices: o.choices } : {}),
      ...(o.type === 'array' ? { string: true } : {}),
    });
  }
  const a = (await y.parseAsync()) as Values & { _: (string | number)[] };
  return toParsed(a, a._);
}
