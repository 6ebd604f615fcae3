// drover-build's command line: parses argv, runs the scheduler, prints output paths.
import { Store, UsageError, runMain } from '@drover/store';
import { Scheduler } from './scheduler.js';
import { resolveBuildOptions } from './options.js';
import { readPathArgs } from './path-args.js';
import { parseFast, parseWithYargs } from './argv.js';

const TOOL = 'drover-build';

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const parsed = parseFast(args) ?? (await parseWithYargs(args));
  const stderr = (s: string) => void process.stderr.write(s);
  const opts = resolveBuildOptions(parsed.flags, process.env, stderr);
  const { paths: drvs, places } = await readPathArgs(parsed.drvs);
  if (drvs.length === 0) {
    // `-` with nothing but blank lines on stdin: say so, rather than suggest the `-` it was given.
    if (places) throw new UsageError('standard input names no derivation (one .drv path a line)');
    throw new UsageError('name at least one derivation (DRV...), or - to read them from stdin');
  }
  const store = new Store({ storeDir: parsed.storeDir, stateDir: parsed.stateDir });
  const scheduler = new Scheduler(store, opts);
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = true;
    stderr(`drover-build: ${sig}: stopping all builds\n`);
    scheduler.interrupt();
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal);
  try {
    const r = await scheduler.run(drvs, places);
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

// Not awaited: the bundle is CommonJS (tools/bundle-cli.js), and runMain exits by itself.
void runMain(TOOL, main);
