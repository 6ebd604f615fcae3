// drover-store dump / restore: NAR archives on stdout and stdin.
import { ByteReader } from '../byte-reader.js';
import { NarFormatError, UsageError } from '../errors.js';
import { dumpToFd, removeTree, restoreNar } from '../nar.js';
import { defineCommand } from './common.js';

export const dump = defineCommand<{ path: string }>({
  command: 'dump <path>',
  describe: 'write the NAR serialisation of PATH to stdout (nix-store --dump)',
  builder: (y) => y.positional('path', { type: 'string', demandOption: true }),
  handler: async (argv) => {
    if (process.stdout.isTTY) throw new UsageError('refusing to write a NAR to a terminal; redirect stdout');
    await dumpToFd(argv.path, 1);
  },
});

export const restore = defineCommand<{ path: string }>({
  command: 'restore <path>',
  describe: 'unpack a NAR from stdin at PATH, which must not exist (nix-store --restore)',
  builder: (y) => y.positional('path', { type: 'string', demandOption: true }),
  handler: async (argv) => {
    const r = new ByteReader(process.stdin);
    await restoreNar(r, argv.path, 'standard input');
    if (!(await r.atEnd())) {
      removeTree(argv.path);
      throw new NarFormatError(`standard input: trailing garbage after the archive at byte ${r.offset}`);
    }
  },
});
