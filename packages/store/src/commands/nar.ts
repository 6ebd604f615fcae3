// drover-store dump / restore: NAR archives on stdout and stdin.
import { NarFormatError, UsageError } from '../errors.js';
// Not nar.js: a dump starts ~10 ms sooner without the modules only restore and hashing need.
import { dumpNarToFd } from '../nar-dump.js';
import { defineCommand, writingStdout } from './common.js';

export const dump = defineCommand<{ path: string }>({
  command: 'dump <path>',
  describe: 'write the NAR serialisation of PATH to stdout (nix-store --dump)',
  builder: (y) => y.positional('path', { type: 'string', demandOption: true }),
  handler: async (argv) => {
    if (process.stdout.isTTY) throw new UsageError('refusing to write a NAR to a terminal; redirect stdout');
    await writingStdout(() => dumpNarToFd(argv.path, 1));
  },
});

export const restore = defineCommand<{ path: string }>({
  command: 'restore <path>',
  describe: 'unpack a NAR from stdin at PATH, which must not exist (nix-store --restore)',
  builder: (y) => y.positional('path', { type: 'string', demandOption: true }),
  handler: async (argv) => {
    // An empty name is no place to write: the writers would each fail in their own words.
    if (argv.path === '') throw new UsageError('restore needs a path to write the archive to, not an empty string');
    const [{ ByteReader }, { removeTree, restoreNar }] = await Promise.all([import('../byte-reader.js'), import('../nar.js')]);
    const r = new ByteReader(process.stdin);
    await restoreNar(r, argv.path, 'standard input');
    if (!(await r.atEnd())) {
      removeTree(argv.path);
      throw new NarFormatError(`standard input: trailing garbage after the archive at byte ${r.offset}`);
    }
  },
});
