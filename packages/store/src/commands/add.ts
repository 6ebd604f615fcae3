// drover-store add / add-fixed: put files and trees into the store.
import { parseHashAlgo } from '../hash.js';
import { out, withStore, defineCommand } from './common.js';

export const add = defineCommand<{ paths: string[]; 'dry-run'?: boolean }>({
  command: 'add <paths..>',
  describe: 'add files or trees to the store (nix-store --add); print their store paths',
  builder: (y) =>
    y.positional('paths', { type: 'string', array: true, demandOption: true }).option('dry-run', { type: 'boolean', describe: 'only print the paths' }),
  handler: (argv) =>
    withStore(argv, async (store) => {
      for (const p of argv.paths) out([await store.addToStore(p, { dryRun: argv['dry-run'] })]);
    }),
});

export const addFixed = defineCommand<{ algo: string; paths: string[]; recursive?: boolean; 'dry-run'?: boolean }>({
  command: 'add-fixed <algo> <paths..>',
  describe: 'add files as fixed-output content (nix-store --add-fixed): flat, or the NAR with --recursive',
  builder: (y) =>
    y
      .positional('algo', { type: 'string', demandOption: true, describe: 'md5, sha1, sha256 or sha512' })
      .positional('paths', { type: 'string', array: true, demandOption: true })
      .option('recursive', { type: 'boolean', describe: 'hash the NAR serialisation' })
      .option('dry-run', { type: 'boolean', describe: 'only print the paths' }),
  handler: (argv) => {
    const algo = parseHashAlgo(argv.algo);
    return withStore(argv, async (store) => {
      for (const p of argv.paths) out([await store.addToStore(p, { recursive: !!argv.recursive, algo, dryRun: argv['dry-run'] })]);
    });
  },
});
