// drover-store register-validity: register paths already on disk (nix-store --register-validity).
import { parseRegistrations } from '../registration.js';
import { registerValidity } from '../register-validity.js';
import { defineCommand, loadStore, withStore, readStdin } from './common.js';

export const registerValidityCommand = defineCommand<{ 'hash-given'?: boolean; reregister?: boolean }>({
  command: 'register-validity',
  describe:
    'register the paths described on stdin (path, deriver, count, references; with --hash-given also hash and size after the path) in one transaction',
  builder: (y) =>
    y
      .option('hash-given', { type: 'boolean', describe: 'entries carry the NAR hash and size; do not hash the paths' })
      .option('reregister', { type: 'boolean', describe: 'also register paths that are valid already' }),
  handler: async (argv) => {
    void loadStore().catch(() => {});
    const text = await readStdin();
    const entries = parseRegistrations(text, { hashGiven: !!argv['hash-given'], what: 'standard input' });
    await withStore(argv, (store) =>
      registerValidity(store, entries, { hashGiven: !!argv['hash-given'], reregister: !!argv.reregister, canonicalise: true, what: 'standard input' }),
    );
  },
});
