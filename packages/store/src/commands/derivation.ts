// drover-store derivation add / show: .drv files in and out as `nix show-derivation` JSON.
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { checkShowable, parseDerivationInput, showDerivations } from '../derivation-json.js';
import { addDerivations } from '../derivation-hash.js';
import { defineCommand, out, pathsFrom, readStdin, withStore } from './common.js';

async function readInput(file: string | undefined): Promise<{ bytes: Buffer; what: string }> {
  if (file === undefined || file === '-') {
    return { bytes: await readStdin(), what: 'stdin' };
  }
  try {
    return { bytes: fs.readFileSync(file), what: `'${file}'` };
  } catch (e) {
    throw new UsageError(`cannot read '${file}': ${(e as Error).message}`);
  }
}

const derivationAdd = defineCommand<{ file?: string; 'dry-run'?: boolean; name?: string }>({
  // One input: a map from `nix show-derivation --recursive` already holds many derivations,
  // and --name names the single one of an input.
  command: 'add [file]',
  describe:
    'add derivations given as JSON in the shape of `nix show-derivation` (or one .drv in ATerm) from FILE or stdin: ' +
    'compute missing output paths, reject wrong ones, write the .drv files; print their paths',
  builder: (y) =>
    y
      .positional('file', { type: 'string', describe: 'JSON or ATerm input; - or nothing reads stdin' })
      .option('dry-run', { type: 'boolean', describe: 'check and print the .drv paths without writing' })
      .option('name', { type: 'string', describe: 'name of a single derivation not keyed by its .drv path (default: env.name)' })
      // Unknown options stay errors; a second file gets the message below, not "Unknown argument".
      .strict(false)
      .strictOptions()
      .check((a) => {
        const extra = a._.slice(2);
        if (extra.length > 0) throw new UsageError(`derivation add reads one FILE (or - for stdin), not ${extra.length + 1}: put several derivations in one JSON map, or run it once per file`);
        return true;
      }),
  handler: (argv) =>
    withStore(argv, async (store) => {
      const { bytes, what } = await readInput(argv.file);
      const entries = parseDerivationInput(bytes, what, argv.name);
      out(await addDerivations(store, entries.map((e) => ({ drv: e.drv, name: e.name!, key: e.key, where: e.where, input: what })), { dryRun: argv['dry-run'] }));
    }),
});

const derivationShow = defineCommand<{ drvs: string[]; recursive?: boolean }>({
  command: 'show <drvs..>',
  describe: 'print .drv files as JSON, exactly as `nix show-derivation` (Nix 2.8) does; - reads the paths from stdin',
  builder: (y) =>
    y
      .positional('drvs', { type: 'string', array: true, demandOption: true })
      .option('recursive', { alias: 'r', type: 'boolean', describe: 'also every .drv in their closure' }),
  handler: (argv) =>
    withStore(argv, async (store) => {
      const args = await pathsFrom(argv.drvs);
      // Each checked where it was read, so a bad one read with - is named by its line.
      const paths = args.resolved(store.storeDir, (_, p) => checkShowable(store, path.resolve(p)));
      process.stdout.write(showDerivations(store, paths, { recursive: argv.recursive }));
    }, { open: 'or-empty' }),
});

export const derivation = defineCommand<object>({
  command: 'derivation',
  describe: 'add and show derivations (.drv files)',
  builder: (y) => y.command(derivationAdd).command(derivationShow).demandCommand(1, 'name a derivation command: add or show'),
  handler: () => {},
});
