// drover-store failed: the paths drover remembers as failed builds (its FailedPaths table).
import { UsageError } from '../errors.js';
import { clearFailedPaths, listFailedPaths } from '../failed-paths.js';
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
    if (!!argv.list === !!argv.clear) throw new UsageError('choose one of --list and --clear');
    const paths = argv.paths ?? [];
    if (argv.list && paths.length > 0) throw new UsageError('--list takes no paths');
    if (argv.clear && paths.length === 0) throw new UsageError("--clear needs the paths to forget ('*' for all)");
    await withStore(argv, async (store) => {
      if (argv.list) {
        out(listFailedPaths(store.db).map((f) => f.path));
        return;
      }
      const all = paths.length === 1 && paths[0] === '*';
      clearFailedPaths(store.db, all ? undefined : await pathsFrom(paths));
    });
  },
});
