// Tests of output path computation (against Nix's fixtures) and of adding derivations to a store.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Store } from './store.js';
import { DroverError } from './errors.js';
import { makeTextPath } from './store-path.js';
import { derivationName, parseDerivation, readDerivation, serializeDerivation, type Derivation } from './derivation.js';
import { parseDerivationsJson } from './derivation-json.js';
import { addDerivation, addDerivations, computeOutputPaths, copyDerivation, hashDerivationModulo, derivationReferences } from './derivation-hash.js';
import { loadDerivationFixtures } from './derivation-fixtures.js';
import { listTree, tempStore } from './testing.js';

const fx = loadDerivationFixtures();
const parsed = new Map<string, Derivation>([...fx.drvs].map(([p, b]) => [p, parseDerivation(b.toString('utf8'), p)]));
// Never touched on disk: input derivations come from the fixtures through `read`.
const fixtureStore = new Store({ storeDir: fx.storeDir, stateDir: '/nonexistent/drover-state' });
const read = (p: string) => {
  const d = parsed.get(p);
  if (!d) throw new Error(`no fixture ${p}`);
  return d;
};

/** The derivation with every output path and output env var emptied (or removed). */
function blanked(drv: Derivation, remove = false): Derivation {
  const d = copyDerivation(drv);
  for (const o of Object.keys(d.outputs)) {
    d.outputs[o]!.path = '';
    if (remove) delete d.env[o];
    else d.env[o] = '';
  }
  return d;
}

test('output paths and .drv paths computed from blanked fixtures are exactly what nix-instantiate made', () => {
  for (const remove of [false, true]) {
    const cache = new Map();
    for (const [p, drv] of parsed) {
      const name = derivationName(p);
      const d = blanked(drv, remove);
      const outs = computeOutputPaths(fixtureStore, name, d, { cache, read });
      for (const [o, out] of Object.entries(drv.outputs)) assert.equal(outs[o], out.path, `${p} ${o}`);
      const text = serializeDerivation(d);
      assert.equal(text, fx.drvs.get(p)!.toString('utf8'), p);
      assert.equal(makeTextPath(fx.storeDir, `${name}.drv`, text, derivationReferences(d)), p);
    }
  }
});

test('JSON from nix show-derivation with outputs blanked computes the same paths', () => {
  for (const e of parseDerivationsJson(fx.showJson.toString('utf8'), 'show.json')) {
    const d = blanked(e.drv);
    computeOutputPaths(fixtureStore, e.name!, d, { cache: new Map(), read });
    assert.deepEqual(d, parsed.get(e.key!), e.key);
  }
});

test('fixed output: hashDerivationModulo is sha256 of fixed:out:[r:]ALGO:HEX:PATH', () => {
  for (const attr of ['fixedFlatMd5', 'fixedRecSha512']) {
    const p = fx.attrs.get(attr)!;
    const out = parsed.get(p)!.outputs.out!;
    const expected = createHash('sha256').update(`fixed:out:${out.hashAlgo}:${out.hash}:${out.path}`).digest('hex');
    assert.equal(hashDerivationModulo(fixtureStore, parsed.get(p)!, new Map(), { read }).hex, expected);
    assert.equal(hashDerivationModulo(fixtureStore, parsed.get(p)!, new Map(), { read, name: derivationName(p) }).hex, expected);
  }
});

test('two fixed-output derivations with the same output hash alike, so they merge as inputs', () => {
  const a = fx.attrs.get('fixedRecSha256')!;
  const b = fx.attrs.get('fixedTwin')!;
  assert.notEqual(a, b);
  assert.ok(hashDerivationModulo(fixtureStore, parsed.get(a)!, new Map(), { read }).equals(hashDerivationModulo(fixtureStore, parsed.get(b)!, new Map(), { read })));
});

test('input hashes are read once and cached', () => {
  const reads = new Map<string, number>();
  const counting = (p: string) => {
    reads.set(p, (reads.get(p) ?? 0) + 1);
    return read(p);
  };
  const cache = new Map();
  const top = parsed.get(fx.attrs.get('specialChars')!)!;
  const h1 = hashDerivationModulo(fixtureStore, top, cache, { read: counting });
  const h2 = hashDerivationModulo(fixtureStore, top, cache, { read: counting });
  assert.ok(h1.equals(h2));
  assert.ok(reads.size >= 4);
  for (const [p, n] of reads) assert.equal(n, 1, p);
});

// ---------------------------------------------------------------------------------------------
// A real store on disk

const s = tempStore('drover-drv-');
const store = new Store({ storeDir: s.storeDir, stateDir: s.stateDir });
after(() => {
  store.close();
  s.cleanup();
});

function mk(name: string, extra: Partial<Derivation> = {}): Derivation {
  return {
    outputs: { out: { path: '' } },
    inputDrvs: {},
    inputSrcs: [],
    system: 'x86_64-linux',
    builder: '/bin/sh',
    args: ['-c', 'echo "$out"'],
    env: { name, builder: '/bin/sh', system: 'x86_64-linux' },
    ...extra,
  };
}

/** Everything that could change when something is written: files and DB rows. */
function snapshot(): string {
  const db = store.db.db;
  return JSON.stringify([
    listTree(s.storeDir),
    db.prepare('select path, hash, ca from ValidPaths order by path').all(),
    db.prepare('select * from Refs order by referrer, reference').all(),
    db.prepare('select * from DerivationOutputs order by drv, id').all(),
  ]);
}

let srcPath = '';
let aPath = '';
test('addDerivation writes the .drv with its references and registers its outputs', async () => {
  const src = path.join(s.dir, 'builder.sh');
  fs.writeFileSync(src, 'echo hi > $out\n');
  srcPath = await store.addToStore(src);
  aPath = await addDerivation(store, mk('a', { outputs: { out: { path: '' }, dev: { path: '' } } }), 'a');
  assert.match(aPath, /-a\.drv$/);
  const a = readDerivation(store, aPath);
  assert.equal(a.env.dev, a.outputs.dev!.path);
  const b = mk('b', { inputDrvs: { [aPath]: ['dev'] }, inputSrcs: [srcPath] });
  b.env.dep = a.outputs.dev!.path;
  const bPath = await addDerivation(store, b, 'b');
  const info = store.db.queryPathInfo(bPath)!;
  assert.deepEqual(info.references, [aPath, srcPath].sort());
  assert.match(info.ca!, /^text:sha256:/);
  const bDrv = readDerivation(store, bPath);
  const rows = store.db.db.prepare('select o.id, o.path from DerivationOutputs o join ValidPaths v on v.id = o.drv where v.path = ?').all(bPath);
  assert.deepEqual(rows, [{ id: 'out', path: bDrv.outputs.out!.path }]);
  assert.equal(fs.readFileSync(bPath, 'utf8'), serializeDerivation(bDrv));
  assert.equal(fs.statSync(bPath).mode & 0o222, 0);
  // Adding the same again, with the paths filled in, changes nothing.
  const before = snapshot();
  assert.equal(await addDerivation(store, bDrv, 'b'), bPath);
  assert.equal(snapshot(), before);
});

test('dry run computes the path and writes nothing', async () => {
  const before = snapshot();
  const p = await addDerivation(store, mk('dry'), 'dry', { dryRun: true });
  assert.equal(snapshot(), before);
  assert.ok(!fs.existsSync(p));
  assert.equal(await addDerivation(store, mk('dry'), 'dry'), p);
});

test('a batch is added inputs first, and checked whole before anything is written', async () => {
  const x = mk('x');
  const xPath = await addDerivation(store, x, 'x', { dryRun: true });
  const y = mk('y', { inputDrvs: { [xPath]: ['out'] } });
  const yPath = (await addDerivations(store, [{ drv: y, name: 'y' }, { drv: x, name: 'x', key: xPath }], { dryRun: true }))[1];
  const bad = mk('z', { inputDrvs: { [xPath]: ['nope'] } });
  const before = snapshot();
  await assert.rejects(
    addDerivations(store, [{ drv: y, name: 'y' }, { drv: x, name: 'x', key: xPath }, { drv: bad, name: 'z' }]),
    /derivation 'z': input derivation '.*-x\.drv' has no output 'nope'/,
  );
  assert.equal(snapshot(), before);
  const written = await addDerivations(store, [{ drv: y, name: 'y' }, { drv: x, name: 'x', key: xPath }]);
  assert.deepEqual(written, [xPath, yPath]);
});

test('bad derivations are refused with exit 2, a message naming the problem, and nothing written', async () => {
  const a = readDerivation(store, aPath);
  const otherOut = `${s.storeDir}/${'0'.repeat(32)}-a`;
  const cases: Array<[string, () => Promise<unknown>, RegExp]> = [
    ['wrong output path', () => addDerivation(store, { ...copyDerivation(a), outputs: { ...a.outputs, out: { path: otherOut } } }, 'a'), new RegExp(`derivation 'a': output 'out' is given as '${otherOut}' but its path is '${a.outputs.out!.path}'`)],
    ['wrong env var', () => addDerivation(store, { ...copyDerivation(a), env: { ...a.env, dev: otherOut } }, 'a'), /environment variable 'dev' is '.*' but must be the path of output 'dev'/],
    ['output outside the store', () => addDerivation(store, mk('o', { outputs: { out: { path: '/elsewhere/abc-o' } } }), 'o'), /output 'out': path '\/elsewhere\/abc-o' is not in the store dir/],
    ['input drv missing', () => addDerivation(store, mk('m', { inputDrvs: { [`${s.storeDir}/${'1'.repeat(32)}-gone.drv`]: ['out'] } }), 'm'), /input derivation '.*-gone\.drv' is not valid in the store/],
    ['input source missing', () => addDerivation(store, mk('m', { inputSrcs: [`${s.storeDir}/${'1'.repeat(32)}-src`] }), 'm'), /input source '.*-src' is not valid in the store/],
    ['input that is no .drv', () => addDerivation(store, mk('m', { inputDrvs: { [srcPath]: ['out'] } }), 'm'), /input derivation '.*' is not a .drv file/],
    ['input outside the store', () => addDerivation(store, mk('m', { inputSrcs: ['/etc/passwd'] }), 'm'), /input source: path '\/etc\/passwd' is not in the store dir/],
    ['missing output of an input', () => addDerivation(store, mk('m', { inputDrvs: { [aPath]: ['lib'] } }), 'm'), /input derivation '.*-a\.drv' has no output 'lib'/],
    ['bad name', () => addDerivation(store, mk('bad name'), 'bad name'), /derivation name 'bad name' contains the character ' '/],
    ['name too long', () => addDerivation(store, mk('n'), 'n'.repeat(210)), /derivation file name 'n+\.drv' is longer than 211/],
    ['output name making a bad path', () => addDerivation(store, mk('o', { outputs: { out: { path: '' }, 'a b': { path: '' } } }), 'o'), /output 'a b': its path name 'o-a b' contains the character ' '/],
    ['output called drv', () => addDerivation(store, mk('o', { outputs: { drv: { path: '' } } }), 'o'), /invalid output name 'drv'/],
    ['mixed outputs', () => addDerivation(store, mk('o', { outputs: { out: { path: '', hashAlgo: 'sha256', hash: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' }, dev: { path: '' } } }), 'o'), /can't mix fixed and input-addressed outputs/],
    ['fixed output not named out', () => addDerivation(store, mk('o', { outputs: { bin: { path: '', hashAlgo: 'sha256', hash: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' } } }), 'o'), /the single fixed output must be named "out"/],
    ['expected path differs', () => addDerivation(store, mk('e'), 'e', { expectedPath: aPath }), /derivation 'e': given as '.*-a\.drv' but its .drv path is/],
  ];
  const before = snapshot();
  for (const [why, f, msg] of cases) {
    await assert.rejects(f, (e: unknown) => e instanceof DroverError && e.exitCode === 2 && msg.test(e.message), why);
  }
  assert.equal(snapshot(), before);
});
