// drover-hook-ssh's command line: the hook itself (run by drover-build), and status/check for people.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { resolveConfig, runMain, UsageError } from '@drover/store';
import { Hook } from './hook.js';
import { loadMachines } from './machines.js';
import { hookSettings } from './settings.js';
import { checkMachine, farmStatus, formatStatus } from './status.js';
import { logFdOpen } from './remote-ops.js';
import { localSystem } from './system.js';

const TOOL = 'drover-hook-ssh';

interface Globals {
  machines?: string;
  'store-dir'?: string;
  'state-dir'?: string;
}

async function main(): Promise<number> {
  let code = 0;
  await yargs(hideBin(process.argv))
    .scriptName(TOOL)
    .usage(
      '$0 THIS_SYSTEM MAX_SILENT_TIME PRINT_BUILD_TRACE   (run by drover-build as its build hook)\n' +
        '$0 status | check                                  (for people)\n\n' +
        'The reference build hook of drover: builds derivations on the machines of a machines file over SSH.',
    )
    .option('machines', { type: 'string', describe: 'machines file [env DROVER_MACHINES, default $XDG_CONFIG_HOME/drover/machines]', global: true })
    .option('store-dir', { type: 'string', describe: 'store dir [env DROVER_STORE_DIR]', global: true })
    .option('state-dir', { type: 'string', describe: 'state dir (slots, failure memory, ssh sockets) [env DROVER_STATE_DIR]', global: true })
    .command(
      '$0 <thisSystem> <maxSilentTime> <printBuildTrace>',
      'answer build requests on stdin (the build hook protocol)',
      (y) =>
        y
          .positional('thisSystem', { type: 'string', demandOption: true })
          .positional('maxSilentTime', { type: 'string', demandOption: true })
          .positional('printBuildTrace', { type: 'string', demandOption: true }),
      async (argv) => {
        const a = argv as unknown as Globals & { thisSystem: string; maxSilentTime: string; printBuildTrace: string };
        if (!/^\d+$/.test(a.maxSilentTime)) throw new UsageError(`MAX_SILENT_TIME must be a whole number of seconds, got '${a.maxSilentTime}'`);
        if (a.printBuildTrace !== '0' && a.printBuildTrace !== '1') throw new UsageError(`PRINT_BUILD_TRACE must be 0 or 1, got '${a.printBuildTrace}'`);
        if (!/^[A-Za-z0-9_.+-]+$/.test(a.thisSystem)) throw new UsageError(`THIS_SYSTEM '${a.thisSystem}' is not a system name`);
        const cfg = resolveConfig({ storeDir: a['store-dir'], stateDir: a['state-dir'] });
        const hook = new Hook({
          thisSystem: a.thisSystem,
          maxSilentTime: Number(a.maxSilentTime),
          printBuildTrace: a.printBuildTrace === '1',
          storeDir: cfg.storeDir,
          stateDir: cfg.stateDir,
          machinesFile: a.machines,
          env: process.env,
          input: process.stdin,
          stderr: (s) => process.stderr.write(s),
          logFd: logFdOpen(4) ? 4 : 'inherit',
        });
        code = await hook.run();
      },
    )
    .command(
      'status',
      'show the machines, the slots in use and recent connection failures',
      () => {},
      (argv) => {
        const a = argv as unknown as Globals;
        const cfg = resolveConfig({ storeDir: a['store-dir'], stateDir: a['state-dir'] });
        const { file, machines } = loadMachines(a.machines);
        const lines = formatStatus(file, farmStatus(machines, cfg.stateDir, hookSettings()), localSystem());
        process.stdout.write(lines.join('\n') + '\n');
      },
    )
    .command(
      'check',
      'connect to each machine and report what works: login, store dir, tools, free disk',
      () => {},
      async (argv) => {
        const a = argv as unknown as Globals;
        const cfg = resolveConfig({ storeDir: a['store-dir'], stateDir: a['state-dir'] });
        const { file, machines } = loadMachines(a.machines);
        const settings = hookSettings();
        process.stdout.write(`machines file: ${file} (${machines.length} machine${machines.length === 1 ? '' : 's'})\n`);
        const results = await Promise.all(machines.map((m) => checkMachine(m, { stateDir: cfg.stateDir, storeDir: cfg.storeDir, settings })));
        for (const r of results) process.stdout.write(`${r.machine.uri}: ${r.ok ? 'ok' : 'FAILED'}\n${r.lines.join('\n')}\n`);
        if (results.some((r) => !r.ok)) code = 1;
      },
    )
    .strict()
    .help()
    .version(false)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    })
    .parseAsync();
  return code;
}

await runMain(TOOL, main);
