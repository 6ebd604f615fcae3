// `npm run bench`: drover-build against `nix-store -r` on the same DAGs of trivial
// derivations, in the same run, as time ratios. DROVER_BENCH_SCALE scales the sizes.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Store, removeTree } from '@drover/store';
import { addDag, type DagSpec } from './dag-gen.js';

const BUILD_BIN = fileURLToPath(new URL('../bin/drover-build.js', import.meta.url));
const scale = Number(process.env.DROVER_BENCH_SCALE ?? '1');
const jobs = Number(process.env.DROVER_BENCH_JOBS ?? os.availableParallelism());

interface Side {
  store: Store;
  env: NodeJS.ProcessEnv;
  drvs: string[];
}

function nixEnv(root: string): NodeJS.ProcessEnv {
  const etc = path.join(root, 'etc');
  fs.mkdirSync(etc, { recursive: true });
  fs.writeFileSync(
    path.join(etc, 'nix.conf'),
    `sandbox = false\nbuild-users-group =\nsubstituters =\nexperimental-features = nix-command\nmax-jobs = ${jobs}\n`,
  );
  return {
    ...process.env,
    NIX_STORE_DIR: path.join(root, 'store'),
    NIX_STATE_DIR: path.join(root, 'var'),
    NIX_LOG_DIR: path.join(root, 'log'),
    NIX_CONF_DIR: etc,
    NIX_REMOTE: '',
  };
}

async function side(root: string, spec: DagSpec, nix: boolean): Promise<Side> {
  const storeDir = path.join(root, 'store');
  const stateDir = path.join(root, nix ? 'var' : 'state');
  const store = new Store({ storeDir, stateDir });
  // Writing the .drv files is set-up, not measured: skip the per-file sync.
  const sync = process.env.DROVER_NO_SYNC;
  process.env.DROVER_NO_SYNC = '1';
  const drvs = await addDag(store, spec);
  if (sync === undefined) delete process.env.DROVER_NO_SYNC;
  else process.env.DROVER_NO_SYNC = sync;
  store.close();
  const env = nix ? nixEnv(root) : { ...process.env, DROVER_STORE_DIR: storeDir, DROVER_STATE_DIR: stateDir };
  return { store, env, drvs };
}

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv, input: string): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env, input, stdio: ['pipe', 'ignore', 'pipe'], maxBuffer: 1 << 28 });
  const t = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status ?? r.signal}): ${r.stderr.toString().slice(-2000)}`);
  return t;
}

const nixRealise = (s: Side) => timed('nix-store', ['-r', ...s.drvs], s.env, '');
const droverBuild = (s: Side) => timed(process.execPath, [BUILD_BIN, '-j', String(jobs), '--sandbox', 'none', '-'], s.env, s.drvs.join('\n'));

interface Row {
  name: string;
  n: number;
  nix: number;
  drover: number;
}

async function bench(name: string, spec: DagSpec, noop: boolean): Promise<Row[]> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-bench-'));
  try {
    const n = await side(path.join(root, 'n'), spec, true);
    const d = await side(path.join(root, 'd'), spec, false);
    const rows: Row[] = [];
    const count = n.drvs.length;
    rows.push({ name, n: count, nix: nixRealise(n), drover: droverBuild(d) });
    if (noop) rows.push({ name: `${name}, no-op rebuild`, n: count, nix: nixRealise(n), drover: droverBuild(d) });
    return rows;
  } finally {
    removeTree(root);
  }
}

const pad = (s: string, w: number) => s.padEnd(w);

function header(): void {
  console.log(`${pad('case', 34)} ${pad('drvs', 6)} ${pad('nix s', 9)} ${pad('drover s', 9)} ${pad('ratio', 7)} ${pad('nix ms/drv', 11)} drover ms/drv`);
}

function print(rows: Row[]): void {
  for (const r of rows) {
    console.log(
      `${pad(r.name, 34)} ${pad(String(r.n), 6)} ${pad(r.nix.toFixed(3), 9)} ${pad(r.drover.toFixed(3), 9)} ${pad((r.drover / r.nix).toFixed(3), 7)} ${pad(((r.nix / r.n) * 1000).toFixed(2), 11)} ${((r.drover / r.n) * 1000).toFixed(2)}`,
    );
  }
}

async function main(): Promise<void> {
  const sz = (k: number) => Math.max(10, Math.round(k * scale));
  console.log(`drover-build vs nix-store -r: trivial /bin/sh derivations, -j ${jobs}, no sandbox on either side, scale ${scale}`);
  const cases = (process.env.DROVER_BENCH_CASES ?? 'random1k,random5k,wide').split(',');
  header();
  if (cases.includes('random1k')) print(await bench(`random DAG ${sz(1000)}`, { shape: 'random', n: sz(1000), seed: 1 }, false));
  if (cases.includes('random5k')) print(await bench(`random DAG ${sz(5000)}`, { shape: 'random', n: sz(5000), seed: 2 }, true));
  if (cases.includes('wide')) print(await bench(`wide: 1 root over ${sz(5000)} leaves`, { shape: 'wide', n: sz(5000) }, false));
}

await main();
