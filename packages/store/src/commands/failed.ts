// drover-store failed: the paths drover remembers as failed builds (its FailedPaths table).
import { UsageError } from '../errors.js';
import { clearFailedPaths, listFailedPaths } from '../failed-paths.js';
import { resolveStorePath } from '../query.js';
import { defineCommand, out, pathsFrom, withStore } from './common.js';

export const failed = defineCommand<{ list?: boolean; clear?: boolean; paths?: string[] }>({
  command: 'failed [paths..]',
  describe: "list the paths recorded as failed builds, or forget them with --clear PATH... ('*' forgets all)",
  builder: (y) =>
    y
      .positional('paths', { type: 'string', array: true })
      .option('list', { type: 'boolean', describe: 'print the failed paths, one per line' })
      .option('clear', { type: 'boolean', describe: 'forget the failures of PATH... so they are built again' }),
  handler: async (argv) => {
    const paths = argv.paths ?? [];
    if (argv.list && argv.clear) throw new UsageError('choose one of --list and --clear, not both');
    if (!argv.list && !argv.clear) {
      throw new UsageError(paths.length > 0 ? "to forget the failures of PATH..., give --clear (or --list, alone, to print them)" : "choose --list, or --clear PATH... ('*' for all)");
    }
    if (argv.list && paths.length > 0) throw new UsageError('--list takes no paths');
    if (argv.clear && paths.length === 0) throw new UsageError("--clear needs the paths to forget ('*' for all)");
    const all = paths.length === 1 && paths[0] === '*';
    const given = argv.clear && !all ? await pathsFrom(paths) : undefined;
    // Listing changes nothing: a state dir without a DB lists no failures and stays without one.
    if (argv.list) {
      await withStore(argv, (store) => out(listFailedPaths(store.db).map((f) => f.path)), { open: 'or-empty' });
      return;
    }
    await withStore(argv, async (store) => {
      // As every command taking paths: one outside this store is a mistake (a typo, another
      // store), not a failure that was never recorded; ./result-style links lead to theirs.
      const resolved = given?.resolved(store.storeDir, resolveStorePath) ?? [];
      clearFailedPaths(store.db, all ? undefined : resolved);
    });
  },
});
