// drover-store export / import: closures as Nix export streams on stdout and stdin.
import { UsageError } from '../errors.js';
import { exportPathsToFd } from '../export.js';
import { importPaths } from '../import.js';
import { fdChunks } from '../fd-chunks.js';
import { resolveStorePath } from '../query.js';
import { defineCommand, out, withStore, pathsFrom, writingStdout } from './common.js';
import { megabytes, progressLine } from './progress.js';

export const exportCommand = defineCommand<{ paths: string[] }>({
  command: 'export <paths..>',
  describe: 'write the given valid paths to stdout as a Nix export stream, references first (nix-store --export)',
  builder: (y) => y.positional('paths', { type: 'string', array: true, demandOption: true, describe: 'paths (- reads them from stdin)' }),
  handler: async (argv) => {
    if (process.stdout.isTTY) throw new UsageError('refusing to write an export stream to a terminal; redirect stdout');
    const args = await pathsFrom(argv.paths);
    const progress = progressLine();
    await withStore(argv, (store) =>
      args.about(() =>
        writingStdout(() =>
          exportPathsToFd(store, args.resolved(store.storeDir, resolveStorePath), 1, {
            onProgress: (p) => progress.update(`exporting: ${p.paths}/${p.totalPaths} paths, ${megabytes(p.bytes)}`),
          }),
        ),
      ),
      { open: 'existing' },
    );
    progress.done();
  },
});

export const importCommand = defineCommand<Record<string, never>>({
  command: 'import',
  describe: 'import a Nix export stream from stdin, registering all of it in one transaction; print its paths (nix-store --import)',
  handler: async (argv) => {
    const progress = progressLine();
    const paths = await withStore(argv, (store) =>
      // Big chunks from a file, a pipe or a socket alike, without a copy per read (fd-chunks.ts).
      importPaths(store, fdChunks(0), {
        what: 'standard input',
        onProgress: (p) => progress.update(`importing: ${p.paths} paths, ${megabytes(p.bytes)}`),
      }),
    );
    progress.done();
    out(paths);
  },
});
