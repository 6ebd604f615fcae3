// drover-store's command line: parses argv, calls the library, maps errors to exit codes.
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { runMain, UsageError } from './errors.js';
import { Store } from './store.js';
import { ByteReader } from './byte-reader.js';
import { dumpToStream, hashFile, hashPath, restoreNar } from './nar.js';
import { parseHash, parseHashAlgo, type HashEncoding } from './hash.js';
import { NarFormatError } from './errors.js';

const TOOL = 'drover-store';

interface Global {
  'store-dir'?: string;
  'state-dir'?: string;
}

function storeOf(argv: Global): Store {
  return new Store({ storeDir: argv['store-dir'], stateDir: argv['state-dir'] });
}

function out(lines: Iterable<string>): void {
  let s = '';
  for (const l of lines) s += `${l}\n`;
  process.stdout.write(s);
}

function encodingOf(argv: { base16?: boolean; base32?: boolean; base64?: boolean; sri?: boolean }, fallback: HashEncoding): HashEncoding {
  const chosen = (['base16', 'base32', 'base64', 'sri'] as const).filter((e) => argv[e]);
  if (chosen.length > 1) throw new UsageError(`choose one of --${chosen.join(', --')}`);
  return chosen[0] ?? fallback;
}

/** Paths from argv; a lone `-` reads them from stdin, one per line. */
async function pathsFrom(args: string[]): Promise<string[]> {
  if (args.length === 1 && args[0] === '-') {
    let text = '';
    for await (const c of process.stdin) text += c;
    return text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  }
  return args;
}

async function main(): Promise<number> {
  let code = 0;
  const cli = yargs(hideBin(process.argv))
    .scriptName(TOOL)
    .usage('$0 <command> [options]\n\nThe drover store: NAR archives, Nix hashes and store paths, .drv files, and the validity DB.')
    .option('store-dir', { type: 'string', describe: 'store dir (part of every store path hash) [env DROVER_STORE_DIR]', global: true })
    .option('state-dir', { type: 'string', describe: 'state dir holding db/ [env DROVER_STATE_DIR]', global: true })
    .command(
      'dump <path>',
      'write the NAR serialisation of PATH to stdout',
      (y) => y.positional('path', { type: 'string', demandOption: true }),
      async (argv) => {
        if (process.stdout.isTTY) throw new UsageError('refusing to write a NAR to a terminal; redirect stdout');
        await dumpToStream(argv.path, process.stdout);
      },
    )
    .command(
      'restore <path>',
      'unpack a NAR from stdin to PATH (which must not exist)',
      (y) => y.positional('path', { type: 'string', demandOption: true }),
      async (argv) => {
        const r = new ByteReader(process.stdin);
        await restoreNar(r, argv.path, 'standard input');
        if (!(await r.atEnd())) {
          const { removeTree } = await import('./nar.js');
          removeTree(argv.path);
          throw new NarFormatError(`standard input: trailing garbage after the archive at byte ${r.offset}`);
        }
      },
    )
    .command(
      'hash <paths..>',
      'print the hash of each PATH: of its NAR serialisation, or of its bytes with --flat (like nix-hash)',
      (y) =>
        y
          .positional('paths', { type: 'string', array: true, demandOption: true })
          .option('type', { type: 'string', default: 'sha256', describe: 'md5, sha1, sha256 or sha512' })
          .option('flat', { type: 'boolean', describe: 'hash the file contents, not the NAR' })
          .option('base16', { type: 'boolean', describe: 'print in base16 (the default)' })
          .option('base32', { type: 'boolean', describe: "print in Nix's base32" })
          .option('base64', { type: 'boolean', describe: 'print in base64' })
          .option('sri', { type: 'boolean', describe: 'print as SRI (ALGO-BASE64)' }),
      async (argv) => {
        const algo = parseHashAlgo(argv.type);
        const enc = encodingOf(argv, 'base16');
        for (const p of argv.paths) {
          const h = argv.flat ? hashFile(p, algo) : hashPath(p, algo).hash;
          out([h.toString(enc)]);
        }
      },
    )
    .command(
      'convert-hash <hashes..>',
      'print each HASH in another encoding',
      (y) =>
        y
          .positional('hashes', { type: 'string', array: true, demandOption: true })
          .option('to', { type: 'string', choices: ['base16', 'base32', 'base64', 'sri'], demandOption: true })
          .option('type', { type: 'string', describe: 'algorithm of hashes that do not name one' }),
      (argv) => {
        const algo = argv.type === undefined ? undefined : parseHashAlgo(argv.type);
        out(argv.hashes.map((h) => parseHash(h, algo).toString(argv.to as HashEncoding)));
      },
    )
    .command(
      'add <paths..>',
      'add files or trees to the store as `nix-store --add` does; print their store paths',
      (y) => y.positional('paths', { type: 'string', array: true, demandOption: true }).option('dry-run', { type: 'boolean', describe: 'only print the paths' }),
      async (argv) => {
        const store = storeOf(argv);
        try {
          for (const p of argv.paths) out([await store.addToStore(p, { dryRun: argv['dry-run'] })]);
        } finally {
          store.close();
        }
      },
    )
    .command(
      'add-fixed <algo> <paths..>',
      'add files as fixed-output content (`nix-store --add-fixed`): flat, or NAR with --recursive',
      (y) =>
        y
          .positional('algo', { type: 'string', demandOption: true })
          .positional('paths', { type: 'string', array: true, demandOption: true })
          .option('recursive', { type: 'boolean', describe: 'hash the NAR serialisation' })
          .option('dry-run', { type: 'boolean', describe: 'only print the paths' }),
      async (argv) => {
        const algo = parseHashAlgo(argv.algo);
        const store = storeOf(argv);
        try {
          for (const p of argv.paths) out([await store.addToStore(p, { recursive: !!argv.recursive, algo, dryRun: argv['dry-run'] })]);
        } finally {
          store.close();
        }
      },
    )
    .demandCommand(1, 'name a command; see --help')
    .strict()
    .help()
    .version(false)
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(msg);
    })
    .wrap(Math.min(100, process.stdout.columns ?? 100));
  void pathsFrom;
  void (cli as Argv);
  await cli.parseAsync();
  return code;
}

await runMain(TOOL, main);
