// drover-store query: what the validity DB knows about paths (nix-store -q).
import { UsageError } from '../errors.js';
import {
  InvalidPathError,
  dotGraph,
  queryOutputs,
  queryReferences,
  queryReferrers,
  queryReferrersClosure,
  queryRequisites,
  requireValid,
  resolveStorePath,
} from '../query.js';
import { byteOrder, refsOf } from '../topo-sort.js';
import { defineCommand, exitState, out, withStore, pathsFrom } from './common.js';

const QUERIES = ['references', 'referrers', 'requisites', 'referrers-closure', 'deriver', 'hash', 'size', 'valid', 'print-invalid', 'outputs', 'graph'] as const;
type Query = (typeof QUERIES)[number];

type Args = { paths: string[]; json?: boolean } & Partial<Record<Query, boolean>>;

export const query = defineCommand<Args>({
  command: 'query <paths..>',
  describe: 'answer one question about PATH... (- reads them from stdin); with --json alone, print their path info',
  builder: (y) =>
    y
      .positional('paths', { type: 'string', array: true, demandOption: true })
      .option('references', { type: 'boolean', describe: 'direct references, references first' })
      .option('referrers', { type: 'boolean', describe: 'direct referrers' })
      .option('requisites', { alias: 'R', type: 'boolean', describe: 'the closure, references before referrers (nix-store -qR)' })
      .option('referrers-closure', { type: 'boolean', describe: 'everything that refers to PATH, transitively' })
      .option('deriver', { type: 'boolean', describe: "the .drv that built each path, or 'unknown-deriver'" })
      .option('hash', { type: 'boolean', describe: 'the NAR hash (sha256:base32)' })
      .option('size', { type: 'boolean', describe: 'the NAR size in bytes' })
      .option('valid', { type: 'boolean', describe: 'print the valid paths; exit 1 if any is not valid' })
      .option('print-invalid', { type: 'boolean', describe: 'print the paths that are not valid; exit 0' })
      .option('outputs', { type: 'boolean', describe: 'output paths of .drv paths (other paths print themselves)' })
      .option('graph', { type: 'boolean', describe: 'the closure as a Graphviz dot graph' })
      .option('json', { type: 'boolean', describe: 'print JSON: an array for lists, an object keyed by path otherwise' }),
  handler: async (argv) => {
    const chosen = QUERIES.filter((q) => argv[q]);
    if (chosen.length > 1) throw new UsageError(`choose one query, not --${chosen.join(' and --')}`);
    const q = chosen[0];
    if (!q && !argv.json) throw new UsageError(`choose a query: --${QUERIES.join(', --')} (or --json for path info)`);
    const args = await pathsFrom(argv.paths);
    await withStore(argv, (store) => args.about(() => {
      const db = store.db;
      const paths = args.resolved(store.storeDir, resolveStorePath);
      const info = (p: string) => {
        const i = db.queryPathInfo(p);
        if (!i) throw new InvalidPathError(p);
        return i;
      };
      const list = (l: string[]) => (argv.json ? out([JSON.stringify(l)]) : out(l));
      const perPath = <T>(f: (p: string) => T, text: (v: T) => string) => {
        if (argv.json) out([JSON.stringify(Object.fromEntries(paths.map((p) => [p, f(p)])))]);
        else out(paths.map((p) => text(f(p))));
      };
      switch (q) {
        case 'references':
          return list(queryReferences(db, paths));
        case 'referrers':
          return list(queryReferrers(db, paths));
        case 'requisites':
          return list(queryRequisites(db, paths));
        case 'referrers-closure':
          return list(queryReferrersClosure(db, paths));
        case 'outputs':
          return list(paths.flatMap((p) => queryOutputs(store, p)));
        case 'deriver':
          return perPath((p) => info(p).deriver ?? null, (d) => d ?? 'unknown-deriver');
        case 'hash':
          return perPath((p) => info(p).narHash.toString('base32', true), (h) => h);
        case 'size':
          return perPath((p) => info(p).narSize, (n) => `${n}`);
        case 'valid':
        case 'print-invalid': {
          const invalid = paths.filter((p) => !db.isValid(p));
          if (q === 'print-invalid') return list(invalid);
          list(paths.filter((p) => db.isValid(p)));
          // Errors, as DESIGN says they look, though the valid ones are still printed.
          for (const p of invalid) process.stderr.write(`drover-store: error: path '${p}' is not valid\n`);
          if (invalid.length > 0) exitState.code = 1;
          return;
        }
        case 'graph': {
          if (argv.json) {
            const graph = db.closure(paths);
            requireValid(paths, graph);
            return out([JSON.stringify(Object.fromEntries(graph.paths.map((p, i) => [p, [...refsOf(graph, i)].map((j) => graph.paths[j]!)])))]);
          }
          return out(dotGraph(db, paths));
        }
        case undefined:
          // As `nix path-info --json` prints it: sorted, each path once, SRI hashes, and
          // the fields Nix leaves out when empty left out.
          return out([
            JSON.stringify(
              [...new Set(paths)].sort(byteOrder).map((p) => {
                const i = info(p);
                return {
                  path: i.path,
                  narHash: i.narHash.toString('sri'),
                  narSize: i.narSize,
                  references: i.references,
                  ...(i.ca ? { ca: i.ca } : {}),
                  ...(i.deriver ? { deriver: i.deriver } : {}),
                  ...(i.registrationTime ? { registrationTime: i.registrationTime } : {}),
                  // Paths Nix built carry these; leaving them out told a script reading
                  // either tool's JSON that a path built here was not, and had no signatures.
                  ...(i.ultimate ? { ultimate: true } : {}),
                  ...(i.sigs && i.sigs.length > 0 ? { signatures: i.sigs } : {}),
                };
              }),
            ),
          ]);
      }
      // A state dir without a DB is a store with no valid path, as in a store never written
      // to: a build hook asks a fresh remote machine `query --print-invalid` what it lacks.
    }), { open: 'or-empty' });
  },
});
