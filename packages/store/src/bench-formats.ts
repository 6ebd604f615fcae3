// Benchmark of the store formats: NAR hashing, dump and add, drover against Nix in one run.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomFillSync } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { best, benchScale, measure, printRows, sq, type Row } from './bench-harness.js';
import { removeTree } from './nar.js';

const BIN = fileURLToPath(new URL('../bin/drover-store.js', import.meta.url));
const scale = benchScale();
const totalBytes = Math.round(1e9 * scale);
const fileCount = Math.max(10, Math.round(20_000 * scale));

const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'drover-bench-formats-')));
process.on('exit', () => removeTree(root));
process.on('SIGINT', () => process.exit(130));

/** A tree of `fileCount` files, sizes spread around the mean, in nested dirs like a package. */
function makeTree(dir: string): void {
  const buf = Buffer.alloc(1 << 20);
  randomFillSync(buf);
  const mean = totalBytes / fileCount;
  let written = 0;
  for (let i = 0; i < fileCount; i++) {
    const sub = path.join(dir, `d${i % 50}`, `e${i % 7}`);
    if (i < 350) fs.mkdirSync(sub, { recursive: true });
    const size = Math.min(buf.length, Math.max(0, Math.round(mean * (0.25 + 1.5 * ((i * 7919) % 1000) / 1000))));
    fs.writeFileSync(path.join(sub, `f${i}`), buf.subarray((i * 131) % 1024, ((i * 131) % 1024) + size));
    written += size;
  }
  void written;
}

function makeBigFile(file: string): void {
  const buf = Buffer.alloc(1 << 24);
  randomFillSync(buf);
  const fd = fs.openSync(file, 'w');
  for (let left = totalBytes; left > 0; left -= buf.length) fs.writeSync(fd, buf, 0, Math.min(left, buf.length));
  fs.closeSync(fd);
}

function nixEnv(store: string, state: string): NodeJS.ProcessEnv {
  const conf = path.join(root, 'nix-etc');
  fs.mkdirSync(conf, { recursive: true });
  fs.writeFileSync(path.join(conf, 'nix.conf'), 'sandbox = false\nbuild-users-group =\nexperimental-features = nix-command\n');
  return { NIX_STORE_DIR: store, NIX_STATE_DIR: state, NIX_LOG_DIR: path.join(root, 'log'), NIX_CONF_DIR: conf };
}

const tree = path.join(root, 'tree');
const big = path.join(root, 'big');
process.stderr.write(`bench-formats: making ${(totalBytes / 1e6).toFixed(0)} MB in ${fileCount} files and one ${(totalBytes / 1e6).toFixed(0)} MB file under ${root}\n`);
makeTree(tree);
makeBigFile(big);
// Warm the page cache for both sides equally.
measure(`cat ${sq(big)} > /dev/null; find ${sq(tree)} -type f -exec cat {} + > /dev/null`);
const treeBytes = Number(measure(`true`).seconds) >= 0 ? totalBytes : 0;

const runs = 3;
const rows: Row[] = [];
const hash = (p: string, name: string) => {
  rows.push({
    name,
    drover: best(runs, () => measure(`node ${sq(BIN)} hash ${sq(p)}`)),
    nix: best(runs, () => measure(`nix-hash --type sha256 ${sq(p)}`)),
    amount: treeBytes,
    target: '≤ 1.00',
  });
};
hash(tree, `NAR sha256 of a tree of ${fileCount} files`);
hash(big, 'NAR sha256 of one big file');
rows.push({
  name: 'dump of the tree to /dev/null',
  drover: best(runs, () => measure(`node ${sq(BIN)} dump ${sq(tree)} > /dev/null`)),
  nix: best(runs, () => measure(`nix-store --dump ${sq(tree)} > /dev/null`)),
  amount: treeBytes,
  target: '≤ 1.00',
});
// Through a pipe, as a dump is used: the reader's copy is part of the cost on both sides.
rows.push({
  name: 'dump of the tree piped into cat (not a target)',
  drover: best(runs, () => measure(`node ${sq(BIN)} dump ${sq(tree)} | cat > /dev/null`)),
  nix: best(runs, () => measure(`nix-store --dump ${sq(tree)} | cat > /dev/null`)),
  amount: treeBytes,
});
let n = 0;
const fresh = () => {
  const d = path.join(root, `store${n++}`);
  return { store: path.join(d, 'store'), state: path.join(d, 'state'), dir: d };
};
rows.push({
  name: 'add of the tree (fresh store each run)',
  drover: best(runs, () => {
    const f = fresh();
    const m = measure(`node ${sq(BIN)} --store-dir ${sq(f.store)} --state-dir ${sq(f.state)} add ${sq(tree)}`);
    removeTree(f.dir);
    return m;
  }),
  nix: best(runs, () => {
    const f = fresh();
    const m = measure(`nix-store --add ${sq(tree)}`, nixEnv(f.store, f.state));
    removeTree(f.dir);
    return m;
  }),
  amount: treeBytes,
  target: '≤ 1.00',
});
printRows(`store formats (${(totalBytes / 1e6).toFixed(0)} MB, best of ${runs})`, rows);
