#!/usr/bin/env node
// Writes a DAG of trivial derivations into a drover store and prints their .drv paths
// (inputs first), for benchmarks and experiments:
//   node tools/dag-gen.js random|wide|chain N [SEED] | drover-build -
// The store comes from DROVER_STORE_DIR / DROVER_STATE_DIR (or the defaults).
import { Store } from '@drover/store';
import { addDag } from '@drover/worker';

const [shape, n, seed] = process.argv.slice(2);
if (!['random', 'wide', 'chain'].includes(shape ?? '') || !/^\d+$/.test(n ?? '')) {
  process.stderr.write('usage: node tools/dag-gen.js random|wide|chain N [SEED]\n');
  process.exit(2);
}
// Throwaway DAGs: no file-system sync per .drv written.
process.env.DROVER_NO_SYNC ??= '1';
const store = new Store();
try {
  const drvs = await addDag(store, { shape, n: Number(n), seed: seed === undefined ? 1 : Number(seed), tag: seed });
  process.stdout.write(`${drvs.join('\n')}\n`);
} finally {
  store.close();
}
