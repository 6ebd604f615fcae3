// drover-build's command line: parses argv, runs the scheduler, prints output paths.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { Store, UsageError, runMain } from '@drover/store';
import { Scheduler } from './scheduler.js';
import { resolveBuildOptions } from './options.js';
import { readPathArgs } from './path-args.js';

const TOOL = 'drover-build';

async function main(): Promise<number> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName(TOOL)
    .usage(
      '$0 [options] (DRV...|-)\n\nRealises derivations: builds what is not valid yet (locally, sandboxed, or through a build hook) and prints the output paths, one per line.',
    )
    .option('max-jobs', { alias: 'j', type: 'number', describe: 'local build slots (0: only through the hook) [default: cores]' })
    .option('keep-going', { alias: 'k', type: 'boolean', describe: 'go on with independent builds after a failure' })
    .option('dry-run', { type: 'boolean', describe: 'show what would be built and what is valid, build nothing' })
    .option('max-silent-time', { type: 'number', describe: 'kill a build silent this many seconds (0: never)' })
    .option('timeout', { type: 'number', describe: 'kill a build running this many seconds (0: never)' })
    .option('build-hook', { type: 'string', describe: 'hook program (and arguments) to hand builds to [env DROVER_BUILD_HOOK]' })
    .option('hook-timeout', { type: 'number', describe: 'seconds to wait for the hook to answer a request [default: 300]' })
    .option('print-build-trace', { type: 'boolean', describe: 'print @ trace lines on stderr' })
    .option('print-build-logs', { alias: 'L', type: 'boolean', describe: 'stream build logs to stderr, prefixed with the name' })
    .option('sandbox', { type: 'string', choices: ['auto', 'bwrap', 'none'], describe: 'sandbox builds with bubblewrap [env DROVER_SANDBOX] [default: auto]' })
    .option('sandbox-paths', { type: 'array', string: true, describe: 'host paths visible read-only in the sandbox, PATH or TARGET=SOURCE (replaces the default)' })
    .option('extra-sandbox-paths', { type: 'array', string: true, describe: 'host paths added to the sandbox paths' })
    .option('cache-failures', { type: 'boolean', describe: 'remember permanent failures and do not retry them' })
    .option('cores', { type: 'number', describe: 'NIX_BUILD_CORES given to builders [default: cores]' })
    .option('keep-failed', { alias: 'K', type: 'boolean', describe: 'keep the build dirs of failed builds' })
    .option('system', { type: 'string', describe: 'this machine\'s system type [default: e.g. x86_64-linux]' })
    .option('system-features', { type: 'array', string: true, describe: 'features this machine offers [default: benchmark big-parallel nixos-test (kvm)]' })
    .option('store-dir', { type: 'string', describe: 'store dir [env DROVER_STORE_DIR]' })
    .option('state-dir', { type: 'string', describe: 'state dir [env DROVER_STATE_DIR]' })
    .strictOptions()
    .help()
    .version(false)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    })
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    .parseAsync();

  const stderr = (s: string) => void process.stderr.write(s);
  const opts = resolveBuildOptions(
    {
      maxJobs: argv['max-jobs'],
      keepGoing: argv['keep-going'],
      dryRun: argv['dry-run'],
      maxSilentTime: argv['max-silent-time'],
      timeout: argv['timeout'],
      buildHook: argv['build-hook'],
      hookTimeout: argv['hook-timeout'],
      printBuildTrace: argv['print-build-trace'],
      printBuildLogs: argv['print-build-logs'],
      sandbox: argv['sandbox'],
      sandboxPaths: argv['sandbox-paths'],
      extraSandboxPaths: argv['extra-sandbox-paths'],
      cacheFailures: argv['cache-failures'],
      cores: argv['cores'],
      keepFailed: argv['keep-failed'],
      system: argv['system'],
      systemFeatures: argv['system-features'],
    },
    process.env,
    stderr,
  );
  const drvs = await readPathArgs(argv._.map(String));
  if (drvs.length === 0) throw new UsageError('name at least one derivation (DRV...), or - to read them from stdin');
  const store = new Store({ storeDir: argv['store-dir'], stateDir: argv['state-dir'] });
  const scheduler = new Scheduler(store, opts);
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = true;
    stderr(`drover-build: ${sig}: stopping all builds\n`);
    scheduler.interrupt();
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal);
  try {
    const r = await scheduler.run(drvs);
    if (r.wouldBuild) {
      if (r.wouldBuild.length > 0) stderr(`these ${r.wouldBuild.length} derivations will be built:\n${r.wouldBuild.map((p) => `  ${p}\n`).join('')}`);
      if (r.alreadyValid && r.alreadyValid.length > 0) stderr(`these ${r.alreadyValid.length} paths are already valid:\n${r.alreadyValid.map((p) => `  ${p}\n`).join('')}`);
      return 0;
    }
    if (r.outputs.length > 0) process.stdout.write(`${r.outputs.join('\n')}\n`);
    if (r.exitCode !== 0) {
      const failed = [...r.failures.map((f) => f.drvPath), ...r.blocked];
      if (failed.length > 0) stderr(`drover-build: error: build of ${failed.map((p) => `'${p}'`).join(', ')} failed\n`);
    }
    return interrupted && r.exitCode === 0 ? 1 : r.exitCode;
  } finally {
    store.close();
  }
}

await runMain(TOOL, main);
