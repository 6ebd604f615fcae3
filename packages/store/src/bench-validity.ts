// Benchmark of the validity registrar: register-validity, load-db, -qR, export and import,
// drover against nix-store on the same data in the same run. DROVER_BENCH_SCALE shrinks it.
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { createHash, randomFillSync } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { best, benchScale, measure, printRows, sq, type Measurement, type Row } from './bench-harness.js';
import { removeTree } from './nar.js';
import { toBase32 } from './hash.js';

const BIN = fileURLToPath(new URL('../bin/drover-store.js', import.meta.url));
const scale = benchScale();
const small = Math.max(100, Math.round(10_000 * scale));
const large = Math.max(1000, Math.round(100_000 * scale));
const bigPaths = Math.max(10, Math.round(1000 * scale));
const bigBytes = Math.round(200e6 * scale);

const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'drover-bench-validity-')));
process.on('exit', () => removeTree(root));
process.on('SIGINT', () => process.exit(130));

const nixConf = path.join(root, 'nix-etc');
fs.mkdirSync(nixConf);
fs.writeFileSync(path.join(nixConf, 'nix.conf'), 'sandbox = false\nbuild-users-group =\nexperimental-features = nix-command\nsubstituters =\n');
function nixEnv(store: string, state: string): NodeJS.ProcessEnv {
  return { NIX_STORE_DIR: store, NIX_STATE_DIR: state, NIX_LOG_DIR: path.join(root, 'nix-log'), NIX_CONF_DIR: nixConf };
}
const drover = (store: string, state: string, args: string) => `node ${sq(BIN)} --store-dir ${sq(store)} --state-dir ${sq(state)} ${args}`;

let fresh = 0;
const freshState = () => path.join(root, `state-${fresh++}`);

function narString(b: Buffer): Buffer {
  const out = Buffer.alloc(8 + b.length + ((8 - (b.length % 8)) % 8));
  out.writeBigUInt64LE(BigInt(b.length));
  b.copy(out, 8);
  return out;
}
const NAR_HEAD = Buffer.concat(['nix-archive-1', '(', 'type', 'regular', 'contents'].map((t) => narString(Buffer.from(t))));
const NAR_TAIL = narString(Buffer.from(')'));

interface Made {
  paths: string[];
  /** register-validity input, without and with hashes. */
  plain: string;
  given: string;
}

/**
 * `n` single-file paths in `storeDir`, a chain (each refers to the one before, as a long
 * dependency chain does) of `size`-byte files. Hashes are computed here, from the NAR of
 * each file, so --hash-given input is honest.
 */
function makePaths(storeDir: string, tag: string, n: number, size: number): Made {
  fs.mkdirSync(storeDir, { recursive: true });
  const fill = Buffer.alloc(Math.max(size, 1));
  randomFillSync(fill);
  const paths: string[] = [];
  let plain = '';
  let given = '';
  for (let i = 0; i < n; i++) {
    const hashPart = toBase32(createHash('sha256').update(`${tag}:${i}`).digest().subarray(0, 20));
    const p = `${storeDir}/${hashPart}-${tag}-${i}`;
    const head = Buffer.from(`${i > 0 ? paths[i - 1] : ''}\n`);
    const contents = size > head.length ? Buffer.concat([head, fill.subarray(head.length, size)]) : head;
    contents[contents.length - 1] = i & 0xff;
    fs.writeFileSync(p, contents);
    const nar = Buffer.concat([NAR_HEAD, narString(contents), NAR_TAIL]);
    const refs = i > 0 ? `1\n${paths[i - 1]}\n` : '0\n';
    plain += `${p}\n\n${refs}`;
    given += `${p}\n${createHash('sha256').update(nar).digest('hex')}\n${nar.length}\n\n${refs}`;
    paths.push(p);
  }
  return { paths, plain, given };
}

/** Undoes canonicalisation, so each side of a register-validity run does the same work. */
function uncanonicalise(paths: string[]): void {
  for (const p of paths) {
    fs.chmodSync(p, 0o644);
    fs.utimesSync(p, 1e9, 1e9);
  }
}

const rows: Row[] = [];
const input = (name: string, text: string) => {
  const f = path.join(root, name);
  fs.writeFileSync(f, text);
  return f;
};

process.stderr.write(`bench-validity: making ${small} + ${large} small paths and ${bigPaths} paths of ${(bigBytes / 1e6).toFixed(0)} MB under ${root}\n`);
const regStore = path.join(root, 'store');
const smallSet = makePaths(regStore, 's', small, 200);
const largeSet = makePaths(regStore, 'l', large, 200);

for (const [set, label, runs] of [
  [smallSet, `${small}`, 3],
  [largeSet, `${large}`, 1],
] as const) {
  for (const hashGiven of [false, true]) {
    const file = input(`reg-${label}-${hashGiven}`, hashGiven ? set.given : set.plain);
    const flag = hashGiven ? ' --hash-given' : '';
    const side = (cmd: (state: string) => string, env: (state: string) => NodeJS.ProcessEnv = () => ({})) =>
      best(runs, () => {
        uncanonicalise(set.paths);
        const state = freshState();
        const m = measure(`${cmd(state)} < ${sq(file)}`, env(state));
        removeTree(state);
        return m;
      });
    rows.push({
      name: `register-validity${flag} of ${label} paths`,
      drover: side((state) => drover(regStore, state, `register-validity${flag}`)),
      nix: side(() => `nix-store --register-validity${flag}`, (state) => nixEnv(regStore, state)),
      amount: set.paths.length,
      unit: 'paths',
      target: 'time ≤ 0.33 (≥ 3× Nix)',
    });
  }
}

// Both DBs with the large chain, for load-db and -qR.
const droverState = freshState();
const nixState = freshState();
const dumpFile = input('dump', largeSet.given);
rows.push({
  name: `load-db of ${large} paths`,
  drover: measure(`${drover(regStore, droverState, 'load-db')} < ${sq(dumpFile)}`),
  nix: measure(`nix-store --load-db < ${sq(dumpFile)}`, nixEnv(regStore, nixState)),
  amount: large,
  unit: 'paths',
  target: 'time ≤ 0.33',
});
const top = largeSet.paths[largeSet.paths.length - 1]!;
const qrOut = [path.join(root, 'qr-drover'), path.join(root, 'qr-nix')];
rows.push({
  name: `query --requisites of a ${large}-path chain`,
  drover: best(3, () => measure(`${drover(regStore, droverState, `query --requisites ${sq(top)}`)} > ${sq(qrOut[0]!)}`)),
  nix: best(1, () => measure(`nix-store -q --requisites ${sq(top)} > ${sq(qrOut[1]!)}`, nixEnv(regStore, nixState))),
  amount: large,
  unit: 'paths',
  target: 'time ≤ 0.10 (≥ 10× Nix)',
});
if (!fs.readFileSync(qrOut[0]!).equals(fs.readFileSync(qrOut[1]!))) throw new Error('drover and Nix print different -qR output');

// Export and import of bigBytes in bigPaths paths (a store dir of their own, emptied for imports).
const xStore = path.join(root, 'xstore');
const xSet = makePaths(xStore, 'x', bigPaths, Math.round(bigBytes / bigPaths));
const xDrover = freshState();
const xNix = freshState();
measure(`${drover(xStore, xDrover, 'register-validity --hash-given')} < ${sq(input('x-given', xSet.given))}`);
measure(`nix-store --register-validity --hash-given < ${sq(path.join(root, 'x-given'))}`, nixEnv(xStore, xNix));
const xList = input('x-list', xSet.paths.join('\n') + '\n');
const exports = [path.join(root, 'export-drover'), path.join(root, 'export-nix')];
rows.push({
  name: `export of ${bigPaths} paths`,
  drover: best(3, () => measure(`${drover(xStore, xDrover, 'export -')} < ${sq(xList)} > ${sq(exports[0]!)}`)),
  nix: best(3, () => measure(`nix-store --export $(cat ${sq(xList)}) > ${sq(exports[1]!)}`, nixEnv(xStore, xNix))),
  amount: fs.statSync(xSet.paths[0]!).size * bigPaths,
  target: '—',
});
const stream = exports[1]!;
if (!fs.readFileSync(exports[0]!).equals(fs.readFileSync(stream))) throw new Error('drover and Nix export different bytes');
// A tenth of the stream, to show that import's memory does not grow with the stream.
const tenth = path.join(root, 'export-tenth');
const tenthList = input('x-tenth', xSet.paths.slice(0, Math.max(1, Math.floor(bigPaths / 10))).join('\n') + '\n');
measure(`${drover(xStore, xDrover, 'export -')} < ${sq(tenthList)} > ${sq(tenth)}`);
removeTree(xStore);
spawnSync('sync');
// Each run's store is moved aside, not removed, until the end: on a file system without a
// journal (this VM's ext4), ext4 skips inodes freed in the last seconds to minutes when it
// allocates, one by one, so a run that follows the removal of 2,000 files pays ~0.5 ms per
// create (perf: recently_deleted() in __ext4_new_inode) for the bench's own cleanup. Both
// tools' runs also alternate, so what state the file system drifts into, both see.
let kept = 0;
const importRun = (cmd: (state: string) => string, env: (state: string) => NodeJS.ProcessEnv = () => ({}), file = stream): Measurement => {
  const state = freshState();
  const m = measure(`${cmd(state)} < ${sq(file)} > /dev/null`, env(state));
  fs.renameSync(xStore, path.join(root, `xstore-done-${kept++}`));
  // Untimed: this run's write-back is not the next run's work.
  spawnSync('sync');
  return m;
};
const droverImport = (file = stream) => importRun((state) => drover(xStore, state, 'import'), () => ({}), file);
const nixImport = () => importRun(() => 'nix-store --import', (state) => nixEnv(xStore, state));
let bestDrover: Measurement | undefined;
let bestNix: Measurement | undefined;
for (let i = 0; i < 3; i++) {
  const pair = i % 2 === 0 ? [droverImport(), nixImport()] : [nixImport(), droverImport()].reverse();
  if (!bestDrover || pair[0]!.seconds < bestDrover.seconds) bestDrover = pair[0];
  if (!bestNix || pair[1]!.seconds < bestNix.seconds) bestNix = pair[1];
}
rows.push({
  name: `import of ${bigPaths} paths (drover fsyncs, Nix does not)`,
  drover: bestDrover!,
  nix: bestNix!,
  amount: fs.statSync(stream).size,
  target: 'time ≤ 0.67 (≥ 1.5× Nix)',
});

const smallImport = droverImport(tenth);
printRows(`validity DB (scale ${scale}; best of 3, of 1 for the ${large}-path runs)`, rows);
process.stdout.write(
  `\nimport peak RSS: ${smallImport.maxRssMb.toFixed(0)} MB for a ${(fs.statSync(tenth).size / 1e6).toFixed(0)} MB stream, ` +
    `${rows[rows.length - 1]!.drover.maxRssMb.toFixed(0)} MB for ${(fs.statSync(stream).size / 1e6).toFixed(0)} MB\n`,
);
