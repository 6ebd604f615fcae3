// drover-store's command line: parses argv, calls the library, maps errors to exit codes.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { runMain, UsageError } from './errors.js';
import { protectDash, restoreDash } from './stdin-dash.js';
import { exitState, type Command } from './commands/common.js';
import { dump, restore } from './commands/nar.js';
import { hash, convertHash } from './commands/hash.js';
import { add, addFixed } from './commands/add.js';
import { registerValidityCommand } from './commands/register-validity.js';
import { query } from './commands/query.js';
import { exportCommand, importCommand } from './commands/export.js';
import { dumpDb, loadDb, verify } from './commands/db-tools.js';
import { failed } from './commands/failed.js';
import { derivation } from './commands/derivation.js';

const TOOL = 'drover-store';

// One line per command module; each owns its options and help text.
const COMMANDS: Command[] = [
  dump,
  restore,
  hash,
  convertHash,
  add,
  addFixed,
  registerValidityCommand, query, exportCommand, importCommand, dumpDb, loadDb, verify, failed,
  derivation,
];

async function main(): Promise<number> {
  let cli = yargs(protectDash(hideBin(process.argv)))
    .middleware(restoreDash, true)
    .scriptName(TOOL)
    .usage('$0 <command> [options]\n\nThe drover store: NAR archives, Nix hashes and store paths, .drv files, and the validity DB.')
    .option('store-dir', { type: 'string', describe: 'store dir, part of every store path hash [env DROVER_STORE_DIR]', global: true })
    .option('state-dir', { type: 'string', describe: 'state dir holding db/ [env DROVER_STATE_DIR]', global: true });
  for (const c of COMMANDS) cli = cli.command(c);
  await cli
    .demandCommand(1, 'name a command; see --help')
    .strict()
    .help()
    .version(false)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    })
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    .parseAsync();
  return exitState.code;
}

await runMain(TOOL, main);
