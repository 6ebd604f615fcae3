// drover-store dump-db / load-db / verify: the validity DB as text, and its consistency check.
import { formatRegistration, parseRegistrations } from '../registration.js';
import { registerValidity } from '../register-validity.js';
import { verifyStore } from '../verify.js';
import { InvalidPathError, resolveStorePath } from '../query.js';
import { defineCommand, exitState, loadStore, out, pathsFrom, withStore, readStdin } from './common.js';
import { progressLine } from './progress.js';

export const dumpDb = defineCommand<{ paths?: string[] }>({
  command: 'dump-db [paths..]',
  describe: 'print the DB (or the given paths) in the register-validity format with hashes, for load-db (nix-store --dump-db)',
  builder: (y) => y.positional('paths', { type: 'string', array: true, describe: 'only these paths (- reads them from stdin)' }),
  handler: (argv) =>
    withStore(argv, async (store) => {
      const db = store.db;
      if (argv.paths && argv.paths.length > 0) {
        const args = await pathsFrom(argv.paths);
        const paths = args.resolved(store.storeDir, resolveStorePath);
        const text: string[] = [];
        await args.about(() => {
          for (const p of paths) {
            const info = db.queryPathInfo(p);
            if (!info) throw new InvalidPathError(p);
            text.push(formatRegistration(info));
          }
        });
        process.stdout.write(text.join(''));
        return;
      }
      let buf = '';
      for (const info of db.allPathInfos()) {
        buf += formatRegistration(info);
        if (buf.length > 1 << 20) {
          process.stdout.write(buf);
          buf = '';
        }
      }
      if (buf) process.stdout.write(buf);
    }, { open: 'existing' }),
});

export const loadDb = defineCommand<Record<string, never>>({
  command: 'load-db',
  describe: 'register the dump-db text on stdin (hashes given, valid paths re-registered) in one transaction (nix-store --load-db)',
  handler: async (argv) => {
    void loadStore().catch(() => {});
    const entries = parseRegistrations(await readStdin(), { hashGiven: true, what: 'standard input' });
    await withStore(argv, (store) => registerValidity(store, entries, { hashGiven: true, reregister: true, canonicalise: false, what: 'standard input' }));
  },
});

export const verify = defineCommand<{ 'check-contents'?: boolean }>({
  command: 'verify',
  describe: 'check the store against the DB; print one line per problem (KIND PATH DETAIL) and exit 1 if there is any',
  builder: (y) => y.option('check-contents', { type: 'boolean', describe: 'also hash every valid path and compare with the DB' }),
  // Unlike `nix-store --verify`, which makes a DB where there is none, verify changes nothing
  // (its manual says so): a state dir without a DB is reported, not turned into an empty store
  // that would then pass.
  handler: (argv) =>
    withStore(
      argv,
      async (store) => {
        const progress = progressLine();
        const problems = await verifyStore(store, {
          checkContents: !!argv['check-contents'],
          onProgress: (checked, total) => progress.update(`checking contents: ${checked}/${total} paths`),
        });
        progress.done();
        out(problems.map((p) => `${p.kind} ${p.path} ${p.detail}`));
        if (problems.length > 0) {
          process.stderr.write(`drover-store: error: verify found ${problems.length} problem${problems.length === 1 ? '' : 's'} (listed on stdout)\n`);
          exitState.code = 1;
        }
      },
      { open: 'existing' },
    ),
});
