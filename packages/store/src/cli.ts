// drover-store's command line: parses argv, calls the library, maps errors to exit codes.
import { runMain, UsageError, yargsFailure } from './errors.js';
import { protectDash, restoreDash } from './stdin-dash.js';
import { commandName, parseFast, unknownOption } from './fast-argv.js';
import { exitState } from './commands/common.js';
import { COMMANDS, loadAllCommands } from './commands/all.js';

const TOOL = 'drover-store';

const GLOBALS = {
  'store-dir': { type: 'string', describe: 'store dir, part of every store path hash [env DROVER_STORE_DIR]' },
  'state-dir': { type: 'string', describe: 'state dir holding db/ [env DROVER_STATE_DIR]' },
} as const;

async function main(): Promise<number> {
  const args = protectDash(process.argv.slice(2));
  const named = COMMANDS.find((c) => c.name === commandName(args, GLOBALS));
  const fast = named && parseFast(args, [await named.load()], GLOBALS);
  if (fast) {
    restoreDash(fast.argv);
    await fast.command.handler(fast.argv as never);
    return exitState.code;
  }
  // Loaded only here: see fast-argv.ts for why.
  const { default: yargs } = await import('yargs');
  let cli = yargs(args)
    .middleware(restoreDash, true)
    .scriptName(TOOL)
    .usage('$0 <command> [options]\n\nThe drover store: NAR archives, Nix hashes and store paths, .drv files, and the validity DB.')
    .option('store-dir', { ...GLOBALS['store-dir'], global: true, requiresArg: true })
    .option('state-dir', { ...GLOBALS['state-dir'], global: true, requiresArg: true });
  const commands = await loadAllCommands();
  for (const c of commands) cli = cli.command(c);
  await cli
    .demandCommand(1, 'name a command; see --help')
    .strict()
    .help()
    .alias('help', 'h')
    .version(false)
    .fail((msg, err) => {
      // yargs would blame the count of arguments where an unknown option took one as its value.
      const unknown = msg?.startsWith('Not enough non-option arguments') ? unknownOption(args, commands, GLOBALS) : undefined;
      if (unknown) throw new UsageError(`unknown option '${unknown}'; see ${TOOL} ${commandName(args, GLOBALS)} --help`);
      yargsFailure(msg, err);
    })
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    .parseAsync();
  return exitState.code;
}

// Not awaited: the bundle is CommonJS (tools/bundle-cli.js), and runMain exits by itself.
void runMain(TOOL, main);
