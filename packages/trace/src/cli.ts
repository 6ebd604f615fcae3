// The drover-trace command line: parses argv (its everyday forms by hand, the rest and --help
// with yargs), runs the library, maps errors to exit codes.
import { TraceError } from './errors.js';
import { parseFast, type TraceArgs } from './fast-argv.js';
import { FORMATS, runTrace, type Format } from './run.js';

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const parsed = parseFast(args) ?? (await parseWithYargs(args));
  if (typeof parsed === 'number') return parsed;
  return runTrace({
    ...(parsed.format ? { format: parsed.format } : {}),
    ...(parsed.history ? { history: parsed.history } : {}),
    logs: parsed.logs,
    inputs: parsed.inputs,
  });
}

/** The options, or the exit code of a usage error or of --help. */
async function parseWithYargs(args: string[]): Promise<TraceArgs | number> {
  // Loaded only here: see fast-argv.ts.
  const { default: yargs } = await import('yargs');
  let usageError: string | null = null;
  const argv = await yargs(args)
    .scriptName('drover-trace')
    .usage('$0 [--format tty|plain|json|summary] [--history FILE] [--logs] [FILE...|-]\n\nReads build traces of drover, Nix (0.16, 1.x, internal-json) and Guix; shows what is happening and what happened.')
    .option('format', { alias: 'f', choices: FORMATS, requiresArg: true, describe: 'output: tty (default on a terminal), plain (default otherwise), json, summary' })
    .option('history', { type: 'string', requiresArg: true, describe: 'SQLite file of earlier build durations, for ETAs; this run is added to it' })
    .option('logs', { type: 'boolean', default: false, describe: 'plain: also print every build log line, prefixed with its derivation name' })
    .epilog(
      'Exit status: 0 when the trace reported no failed build, 1 when it did (or the history file could not be written), 2 for a usage error or an input that cannot be read, 130 when interrupted.\n\n' +
      'Examples:\n' +
      '  drover-build --print-build-trace DRV 2>&1 >/dev/null | drover-trace\n' +
      '  nix-build --log-format internal-json -v 2>&1 | drover-trace --format json | jq .type\n' +
      '  drover-trace --format summary build.log',
    )
    .strictOptions()
    .help()
    .alias('help', 'h')
    .version(false)
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      usageError = (err?.message ?? msg).replace(/\s*\n\s*/g, ' ');
    })
    .parse();
  // Given twice, yargs makes an option an array; which one was meant is not for it to guess.
  for (const name of ['format', 'history'] as const) {
    if (usageError === null && Array.isArray(argv[name])) usageError = `--${name} given more than once`;
  }
  if (usageError === null && argv.history === '') usageError = '--history needs a FILE';
  if (usageError !== null) {
    process.stderr.write(`drover-trace: error: ${usageError}\nTry 'drover-trace --help'.\n`);
    return 2;
  }
  return {
    ...(argv.format ? { format: argv.format as Format } : {}),
    ...(argv.history ? { history: argv.history } : {}),
    logs: argv.logs,
    inputs: argv._.map(String),
  };
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const code = e instanceof TraceError ? e.exitCode : 1;
    process.stderr.write(`drover-trace: error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = code;
  },
);
