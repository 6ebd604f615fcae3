// drover-store hash / convert-hash: Nix's hashes in Nix's encodings.
import { UsageError } from '../errors.js';
import { parseHash, parseHashAlgo, type HashEncoding } from '../hash.js';
import { hashFile, hashPathAsync } from '../nar.js';
import { out, defineCommand } from './common.js';

function encodingOf(argv: Partial<Record<HashEncoding, boolean>>, fallback: HashEncoding): HashEncoding {
  const chosen = (['base16', 'base32', 'base64', 'sri'] as const).filter((e) => argv[e]);
  if (chosen.length > 1) throw new UsageError(`choose one of --${chosen.join(', --')}`);
  return chosen[0] ?? fallback;
}

export const hash = defineCommand<{ paths: string[]; type: string; flat?: boolean } & Partial<Record<HashEncoding, boolean>>>({
  command: 'hash <paths..>',
  describe: 'print the hash of the NAR of each PATH, or of its bytes with --flat (nix-hash)',
  builder: (y) =>
    y
      .positional('paths', { type: 'string', array: true, demandOption: true })
      .option('type', { type: 'string', default: 'sha256', describe: 'md5, sha1, sha256 or sha512' })
      .option('flat', { type: 'boolean', describe: 'hash the file contents, not the NAR' })
      .option('base16', { type: 'boolean', describe: 'print in base16 (the default)' })
      .option('base32', { type: 'boolean', describe: "print in Nix's base32" })
      .option('base64', { type: 'boolean', describe: 'print in base64' })
      .option('sri', { type: 'boolean', describe: 'print as SRI (ALGO-BASE64)' }),
  handler: async (argv) => {
    const algo = parseHashAlgo(argv.type);
    const enc = encodingOf(argv, 'base16');
    for (const p of argv.paths) out([(argv.flat ? hashFile(p, algo) : (await hashPathAsync(p, algo)).hash).toString(enc)]);
  },
});

export const convertHash = defineCommand<{ hashes: string[]; to: HashEncoding; type?: string }>({
  command: 'convert-hash <hashes..>',
  describe: 'print each HASH (base16, base32, base64 or SRI) in another encoding',
  builder: (y) =>
    y
      .positional('hashes', { type: 'string', array: true, demandOption: true })
      .option('to', { type: 'string', choices: ['base16', 'base32', 'base64', 'sri'], demandOption: true })
      .option('type', { type: 'string', describe: 'algorithm of hashes that do not name one' }),
  handler: (argv) => {
    const algo = argv.type === undefined ? undefined : parseHashAlgo(argv.type);
    out(argv.hashes.map((h) => parseHash(h, algo).toString(argv.to)));
  },
});
