// drover-hook-ssh's command line: the hook itself (run by drover-build), serve (run over ssh), status/check for people.
//
// The hook and serve start once per remote build, so their command lines are read by hand:
// loading yargs costs about 100 ms of CPU, more than the rest of a hook's start-up. The
// commands for people (and --help, and any mistake) go through yargs.
import path from 'node:path';
import { resolveConfig, runMain, UsageError, yargsFailure } from '@drover/store';
import { Hook } from './hook.js';
import { logFdOpen } from './remote-ops.js';
import { MAX_TIMEOUT_SECONDS } from './settings.js';

const TOOL = 'drover-hook-ssh';
const VERSION = '0.1.0';

interface Globals {
  machines?: string;
  'store-dir'?: string;
  'state-dir'?: string;
}

const GLOBAL_OPTIONS = ['machines', 'store-dir', 'state-dir'] as const;
const COMMANDS = ['status', 'check', 'serve', 'agent', 'help'];
const AGENT_OPTIONS = ['socket', 'idle'] as const;

/**
 * `--opt value`, `--opt=value` for the global options (and the agent's `--socket`, `--idle`,
 * `--start`), then positionals; undefined for anything else.
 */
function quickParse(argv: readonly string[]): { globals: Globals; agent: { start: boolean; socket?: string; idle?: string }; positionals: string[] } | undefined {
  const globals: Globals = {};
  const agent: { start: boolean; socket?: string; idle?: string } = { start: false };
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) {
      positionals.push(a);
      continue;
    }
    if (a === '--start') {
      agent.start = true;
      continue;
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    const name = m?.[1];
    if (!m || !name) return undefined;
    const isGlobal = (GLOBAL_OPTIONS as readonly string[]).includes(name);
    if (!isGlobal && !(AGENT_OPTIONS as readonly string[]).includes(name)) return undefined;
    const value = m[2] ?? argv[++i];
    if (value === undefined) return undefined;
    if (isGlobal) globals[name as (typeof GLOBAL_OPTIONS)[number]] = value;
    else agent[name as (typeof AGENT_OPTIONS)[number]] = value;
  }
  return { globals, agent, positionals };
}

async function runHook(g: Globals, thisSystem: string, maxSilentTime: string, printBuildTrace: string): Promise<number> {
  if (!/^\d+$/.test(maxSilentTime)) throw new UsageError(`MAX_SILENT_TIME must be a whole number of seconds, got '${maxSilentTime}'`);
  if (printBuildTrace !== '0' && printBuildTrace !== '1') throw new UsageError(`PRINT_BUILD_TRACE must be 0 or 1, got '${printBuildTrace}'`);
  if (!/^[A-Za-z0-9_.+-]+$/.test(thisSystem)) throw new UsageError(`THIS_SYSTEM '${thisSystem}' is not a system name`);
  const cfg = resolveConfig({ storeDir: g['store-dir'], stateDir: g['state-dir'] });
  const hook = new Hook({
    thisSystem,
    maxSilentTime: Number(maxSilentTime),
    printBuildTrace: printBuildTrace === '1',
    storeDir: cfg.storeDir,
    stateDir: cfg.stateDir,
    machinesFile: g.machines,
    env: process.env,
    input: process.stdin,
    stderr: (s) => process.stderr.write(s),
    logFd: logFdOpen(4) ? 4 : 'inherit',
  });
  return hook.run();
}

function remoteConfig(g: Globals) {
  if (g['store-dir']) process.env.DROVER_STORE_DIR = g['store-dir'];
  if (g['state-dir']) process.env.DROVER_STATE_DIR = g['state-dir'];
  return resolveConfig({});
}

/** One build session on stdin/stdout (the hook runs this over ssh when it does not use the agent). */
async function runServe(g: Globals): Promise<number> {
  const { runSession } = await import('./remote-session.js');
  return runSession({
    input: process.stdin,
    output: process.stdout,
    config: remoteConfig(g),
    env: process.env,
    version: `drover-hook-ssh ${VERSION}, node ${process.version}`,
    onStop: (stop) => {
      process.on('SIGTERM', stop);
      process.on('SIGHUP', stop);
      return () => {
        process.off('SIGTERM', stop);
        process.off('SIGHUP', stop);
      };
    },
  });
}

/** `agent --start [--idle S]`: make sure one runs, print its socket; `agent --socket P --idle S`: be it. */
async function runAgentCommand(g: Globals, a: { start: boolean; socket?: string; idle: number }): Promise<number> {
  // From yargs, a repeated option is an array and --idle any number (NaN included).
  if (a.socket !== undefined && typeof a.socket !== 'string') throw new UsageError(`agent takes one --socket PATH, got ${JSON.stringify(a.socket)}`);
  if (!Number.isInteger(a.idle) || a.idle < 0 || a.idle > MAX_TIMEOUT_SECONDS) throw new UsageError(`--idle must be a whole number of seconds up to ${MAX_TIMEOUT_SECONDS}, got '${a.idle}'`);
  const config = remoteConfig(g);
  const { runAgent, startAgent } = await import('./agent.js');
  if (a.start) {
    const socket = await startAgent(config, { script: process.argv[1]!, idleSeconds: a.idle, env: process.env });
    process.stdout.write(`${socket}\n`);
    return 0;
  }
  if (!a.socket) throw new UsageError('agent needs --start or --socket PATH');
  // Node listens on a TCP port, on every interface, when the "path" is a number.
  if (!path.isAbsolute(a.socket)) throw new UsageError(`agent --socket must be an absolute path, got '${a.socket}'`);
  return runAgent({ socket: a.socket, idleSeconds: a.idle, config, env: process.env, version: `drover-hook-ssh ${VERSION}, node ${process.version}` });
}

/** An option given twice: the last one wins, as on the hook's own command line (quickParse); yargs would pass an array. */
function lastOf(v: unknown): unknown {
  return Array.isArray(v) ? v[v.length - 1] : v;
}

/** Every option any command takes (yargs also reads `--no-X` and camelCase spellings). */
const KNOWN_OPTIONS = new Set<string>([...GLOBAL_OPTIONS, ...AGENT_OPTIONS, 'start', 'help', 'h', 'storeDir', 'stateDir']);

/**
 * An option no command takes, named before yargs sees it: yargs checks the default command's
 * three positionals first, so `--bogus` alone would be "Not enough non-option arguments".
 */
function unknownOption(argv: readonly string[]): string | undefined {
  for (const a of argv) {
    if (a === '--') return undefined;
    const m = /^--?([^=]+)/.exec(a);
    if (!m || a === '-') continue;
    const name = m[1]!.replace(/^no-/, '');
    if (!KNOWN_OPTIONS.has(name)) return a.replace(/=.*$/, '');
  }
  return undefined;
}

async function withYargs(): Promise<number> {
  const bogus = unknownOption(process.argv.slice(2));
  if (bogus) throw new UsageError(`unknown option '${bogus}' (see ${TOOL} --help)`);
  const { default: yargs } = await import('yargs');
  const { hideBin } = await import('yargs/helpers');
  const { loadMachines } = await import('./machines.js');
  const { hookSettings } = await import('./settings.js');
  const { checkMachine, farmStatus, formatCheck, formatStatus } = await import('./status.js');
  const { localSystem } = await import('./system.js');
  let code = 0;
  const cfgOf = (a: Globals) => resolveConfig({ storeDir: a['store-dir'], stateDir: a['state-dir'] });
  await yargs(hideBin(process.argv))
    .scriptName(TOOL)
    .usage(
      '$0 THIS_SYSTEM MAX_SILENT_TIME PRINT_BUILD_TRACE   (run by drover-build as its build hook)\n' +
        '$0 status | check                                  (for people)\n' +
        '$0 serve | agent                                   (run on a remote machine by the hook, over ssh)\n\n' +
        'The reference build hook of drover: builds derivations on the machines of a machines file over SSH.',
    )
    .option('machines', { type: 'string', coerce: lastOf, describe: 'machines file [env DROVER_MACHINES, default $XDG_CONFIG_HOME/drover/machines]', global: true, requiresArg: true })
    .option('store-dir', { type: 'string', coerce: lastOf, describe: 'store dir [env DROVER_STORE_DIR]', global: true, requiresArg: true })
    .option('state-dir', { type: 'string', coerce: lastOf, describe: 'state dir (slots, failure memory, ssh sockets) [env DROVER_STATE_DIR]', global: true, requiresArg: true })
    .command(
      '$0 <thisSystem> <maxSilentTime> <printBuildTrace>',
      'answer build requests on stdin (the build hook protocol)',
      (y) =>
        y
          .positional('thisSystem', { type: 'string', demandOption: true, describe: 'THIS_SYSTEM: the local system, e.g. x86_64-linux' })
          .positional('maxSilentTime', { type: 'string', demandOption: true, describe: 'MAX_SILENT_TIME: seconds a remote build may print nothing (0: no limit)' })
          .positional('printBuildTrace', { type: 'string', demandOption: true, describe: 'PRINT_BUILD_TRACE: 1 prints `@ build-remote DRV URI`, 0 does not' }),
      async (argv) => {
        const a = argv as unknown as Globals & { thisSystem: string; maxSilentTime: string; printBuildTrace: string };
        code = await runHook(a, a.thisSystem, a.maxSilentTime, a.printBuildTrace);
      },
    )
    .command('status', 'show the machines, the slots in use and recent connection failures', () => {}, (argv) => {
      const a = argv as unknown as Globals;
      const { machines, ...src } = loadMachines(a.machines);
      const lines = formatStatus(src, farmStatus(machines, cfgOf(a).stateDir, hookSettings()), localSystem());
      process.stdout.write(lines.join('\n') + '\n');
    })
    .command('check', 'connect to each machine and report what works: login, store dir, tools, free disk', () => {}, async (argv) => {
      const a = argv as unknown as Globals;
      const cfg = cfgOf(a);
      const { machines, ...src } = loadMachines(a.machines);
      const settings = hookSettings();
      const results = await Promise.all(machines.map((m) => checkMachine(m, { stateDir: cfg.stateDir, storeDir: cfg.storeDir, settings })));
      process.stdout.write(formatCheck(src, results).join('\n') + '\n');
      if (results.some((r) => !r.ok)) code = 1;
    })
    .command('serve', 'run one remote build session on stdin/stdout (run by the hook over ssh; not for people)', () => {}, async (argv) => {
      code = await runServe(argv as unknown as Globals);
    })
    .command(
      'agent',
      'the long-lived remote end of build sessions, on a Unix socket (started by the hook over ssh; not for people)',
      (y) =>
        y
          .option('start', { type: 'boolean', describe: 'start one unless it runs; print its socket' })
          .option('socket', { type: 'string', coerce: lastOf, requiresArg: true, describe: 'the socket to listen on' })
          .option('idle', { type: 'number', default: 600, requiresArg: true, describe: 'exit after this many seconds without sessions' }),
      async (argv) => {
        const a = argv as unknown as Globals & { start?: boolean; socket?: string; idle: number };
        code = await runAgentCommand(a, { start: a.start ?? false, socket: a.socket, idle: a.idle });
      },
    )
    .epilog(
      'Machines file, one machine a line (`#` comments, `-` for an empty field):\n' +
        '  URI SYSTEMS SSH_KEY MAX_JOBS SPEED_FACTOR\n' +
        '      SUPPORTED_FEATURES MANDATORY_FEATURES HOST_KEY_BASE64\n' +
        '  ssh://me@big.example x86_64-linux /home/me/.ssh/farm 8 2 kvm,big-parallel\n\n' +
        'Use: drover-build --build-hook drover-hook-ssh DRV...\n\n' +
        'Exit status: 0 built (status, check: done); 1 failure (check: a machine\n' +
        'failed); 2 usage error or malformed input; 100 the build failed on the remote.\n\n' +
        'Settings (DROVER_HOOK_SSH_*, DROVER_SSHOPTS) and URI options: see the manual,\n' +
        'packages/hook-ssh/README.md.',
    )
    .strict()
    .strictOptions()
    .help()
    .alias('help', 'h')
    .version(false)
    .fail(yargsFailure)
    .parseAsync();
  return code;
}

async function main(): Promise<number> {
  const q = quickParse(process.argv.slice(2));
  const agentOpts = q && (q.agent.start || q.agent.socket !== undefined || q.agent.idle !== undefined);
  if (q && q.positionals.length === 1 && q.positionals[0] === 'serve' && !agentOpts) return runServe(q.globals);
  if (q && q.positionals.length === 1 && q.positionals[0] === 'agent') {
    const idle = q.agent.idle ?? '600';
    if (!/^\d+$/.test(idle) || Number(idle) > MAX_TIMEOUT_SECONDS) throw new UsageError(`--idle must be a whole number of seconds up to ${MAX_TIMEOUT_SECONDS}, got '${idle}'`);
    return runAgentCommand(q.globals, { start: q.agent.start, socket: q.agent.socket, idle: Number(idle) });
  }
  if (agentOpts) return withYargs();
  if (q && q.positionals.length === 3 && !COMMANDS.includes(q.positionals[0]!)) {
    const [sys, mst, pbt] = q.positionals as [string, string, string];
    return runHook(q.globals, sys, mst, pbt);
  }
  // yargs would read these as the hook's three positionals and say "Not enough non-option
  // arguments: got 1, need at least 3": a mistyped `statsu` deserves its own name.
  if (q && q.positionals.length < 3 && !COMMANDS.includes(q.positionals[0] ?? '')) {
    const expected = `status, check, serve, agent, or THIS_SYSTEM MAX_SILENT_TIME PRINT_BUILD_TRACE (see ${TOOL} --help)`;
    if (q.positionals.length === 2) throw new UsageError(`the hook takes 3 arguments, THIS_SYSTEM MAX_SILENT_TIME PRINT_BUILD_TRACE; got 2: '${q.positionals.join(' ')}'`);
    throw new UsageError(`${q.positionals.length === 0 ? 'no command given' : `unknown command '${q.positionals[0]}'`}: expected ${expected}`);
  }
  return withYargs();
}

// Not awaited: the bundle is CommonJS (tools/bundle-cli.js), and runMain exits by itself.
void runMain(TOOL, main);
