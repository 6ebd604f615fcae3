// drover-store derivation add/show against live Nix 2.8 (nix-instantiate, nix show-derivation) on the fixture expressions.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { STORE_BIN, run, tempStore } from '@drover/store/testing';
import { StoreDb, readDerivation, removeTree, serializeDerivation, Store } from '@drover/store';
import { nix, nixEnv } from './nix-env.js';

const FIXTURES = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../packages/store/fixtures/derivations');
const EXPR = path.join(FIXTURES, 'derivations.nix');

const s = tempStore('drover-drv-oracle-');
const env = { ...s.env, ...nixEnv(s.dir, s.storeDir, s.stateDir) };
after(() => s.cleanup());

function drover(args: string[], input?: string | Buffer) {
  const r = run(STORE_BIN, args, { env, input });
  assert.equal(r.code, 0, `drover-store ${args.join(' ')}: ${r.stderr}`);
  return r;
}

function derivationOutputs(): unknown[] {
  const db = new StoreDb(s.stateDir);
  try {
    return db.db.prepare('select v.path as drv, o.id, o.path from DerivationOutputs o join ValidPaths v on v.id = o.drv order by v.path, o.id').all();
  } finally {
    db.close();
  }
}

// What Nix made, kept for after its store is wiped and drover rebuilds it from the JSON.
const roots = nix('nix-instantiate', [EXPR], env).toString().trim().split('\n');
const nixJson = nix('nix', ['show-derivation', '--recursive', ...roots], env);
const all = Object.keys(JSON.parse(nixJson.toString()) as object);
const nixBytes = new Map(all.map((p) => [p, fs.readFileSync(p)]));
const nixOutputs = derivationOutputs();

test('the expressions cover every kind of derivation', () => {
  assert.equal(roots.length, 17);
  const text = nixJson.toString();
  for (const algo of ['md5', 'sha1', 'sha256', 'sha512']) {
    assert.ok(text.includes(`"hashAlgo": "${algo}"`), algo);
    assert.ok(text.includes(`"hashAlgo": "r:${algo}"`), `r:${algo}`);
  }
  assert.ok(text.includes('"__json": '));
  assert.ok(text.includes('\\u0001'));
});

test('drover parses and re-serialises every .drv Nix wrote to the same bytes', () => {
  const store = new Store({ storeDir: s.storeDir, stateDir: s.stateDir });
  for (const [p, bytes] of nixBytes) assert.ok(Buffer.from(serializeDerivation(readDerivation(store, p))).equals(bytes), p);
});

test('derivation show prints what nix show-derivation prints, recursive or not, paths from argv or stdin', () => {
  assert.ok(drover(['derivation', 'show', '--recursive', ...roots]).stdoutBytes.equals(nixJson));
  assert.ok(drover(['derivation', 'show', '-'], all.join('\n') + '\n').stdoutBytes.equals(nixJson));
  const one = roots.find((p) => p.endsWith('-special-chars.drv'))!;
  assert.ok(drover(['derivation', 'show', one]).stdoutBytes.equals(nix('nix', ['show-derivation', one], env)));
});

test('derivation add of show-derivation JSON rebuilds the same .drv files in an empty store, and Nix agrees', () => {
  fs.chmodSync(s.storeDir, 0o755);
  removeTree(s.storeDir);
  removeTree(s.stateDir);
  // Input sources are plain files added from the working tree, as nix-instantiate added them.
  for (const f of ['hello.txt', 'src-dir']) drover(['add', path.join(FIXTURES, f)]);
  const added = drover(['derivation', 'add'], nixJson).stdout.trim().split('\n');
  assert.deepEqual([...added].sort(), [...all].sort());
  for (const [p, bytes] of nixBytes) assert.ok(fs.readFileSync(p).equals(bytes), p);
  assert.deepEqual(derivationOutputs(), nixOutputs);
  // Nix reads drover's store: the same JSON, the same paths, and nothing to complain about.
  assert.ok(nix('nix', ['show-derivation', '--recursive', ...roots], env).equals(nixJson));
  assert.deepEqual(nix('nix-instantiate', [EXPR], env).toString().trim().split('\n'), roots);
  nix('nix-store', ['--verify', '--check-contents'], env);
});

test('one derivation with its output paths left empty gets the paths nix-instantiate gave it', () => {
  const json = JSON.parse(nixJson.toString()) as Record<string, { outputs: Record<string, { path?: string }>; env: Record<string, string> }>;
  for (const p of roots.filter((r) => /-(chain-3|uses-fixed|structured|special-chars|fixed-flat-sha1)\.drv$/.test(r))) {
    const d = json[p]!;
    for (const o of Object.keys(d.outputs)) {
      delete d.outputs[o]!.path;
      d.env[o] = '';
    }
    const name = p.replace(/^.*?\/[a-z0-9]{32}-/, '').replace(/\.drv$/, '');
    assert.equal(drover(['derivation', 'add', '--dry-run', '--name', name], JSON.stringify(d)).stdout, `${p}\n`, p);
  }
});
