// drover-store derivation add/show run as a user would: round trips, and hostile input refused with exit 2 and nothing written.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { STORE_BIN, listTree, run, tempStore } from '@drover/store/testing';
import { StoreDb, hashBytes, hashPath, makeTextPath } from '@drover/store';

const s = tempStore('drover-drv-cli-');
after(() => s.cleanup());

function drover(args: string[], input?: string | Buffer) {
  return run(STORE_BIN, args, { env: s.env, input });
}

function ok(args: string[], input?: string | Buffer): string {
  const r = drover(args, input);
  assert.equal(r.code, 0, `drover-store ${args.join(' ')}: ${r.stderr}`);
  assert.equal(r.stderr, '');
  return r.stdout;
}

/** Files in the store dir and every row of the DB: what must not change on bad input. */
function snapshot(): string {
  const db = new StoreDb(s.stateDir);
  try {
    const rows = ['ValidPaths', 'Refs', 'DerivationOutputs'].map((t) => db.db.prepare(`select * from ${t} order by 1, 2`).all());
    return JSON.stringify([listTree(s.storeDir), rows]);
  } finally {
    db.close();
  }
}

const drv = (extra: object = {}) => ({ outputs: { out: {} }, system: 'x86_64-linux', builder: '/bin/sh', args: ['-c', 'echo > $out'], env: { name: 'base' }, ...extra });
let srcPath = '';
let basePath = '';
let baseJson: Record<string, { outputs: Record<string, { path: string }>; env: Record<string, string> }> = {};

before(() => {
  const src = path.join(s.dir, 'builder.sh');
  fs.writeFileSync(src, 'echo hi\n');
  srcPath = ok(['add', src]).trim();
  basePath = ok(['derivation', 'add'], JSON.stringify(drv({ inputSrcs: [srcPath], outputs: { out: {}, dev: {} } }))).trim();
  baseJson = JSON.parse(ok(['derivation', 'show', basePath])) as typeof baseJson;
});

test('add fills in output paths; show prints them; show output adds back to the same path', () => {
  const d = baseJson[basePath]!;
  assert.match(d.outputs.out!.path, new RegExp(`^${s.storeDir}/[a-z0-9]{32}-base$`));
  assert.equal(d.env.dev, d.outputs.dev!.path);
  const before = snapshot();
  assert.equal(ok(['derivation', 'add', '--dry-run'], JSON.stringify(baseJson)), `${basePath}\n`);
  assert.equal(ok(['derivation', 'add'], JSON.stringify(baseJson)), `${basePath}\n`);
  // The .drv itself (ATerm) is accepted as input too.
  assert.equal(ok(['derivation', 'add', '--dry-run', basePath]), `${basePath}\n`);
  assert.equal(snapshot(), before);
  const file = path.join(s.dir, 'in.json');
  fs.writeFileSync(file, JSON.stringify(baseJson));
  assert.equal(ok(['derivation', 'add', file]), `${basePath}\n`);
  assert.equal(ok(['derivation', 'show', '-'], `${basePath}\n`), ok(['derivation', 'show', basePath]));
  // The registration is Nix's: text CA, references = inputs, DerivationOutputs rows.
  const db = new StoreDb(s.stateDir);
  try {
    const info = db.queryPathInfo(basePath)!;
    assert.deepEqual(info.references, [srcPath]);
    assert.equal(info.narHash.hex, hashPath(basePath).hash.hex);
    const text = fs.readFileSync(basePath);
    assert.equal(info.ca, `text:sha256:${hashBytes('sha256', text).toString('base32')}`);
    assert.equal(makeTextPath(s.storeDir, 'base.drv', text, [srcPath]), basePath);
    assert.deepEqual(db.db.prepare('select id, path from DerivationOutputs order by id').all(), [
      { id: 'dev', path: d.outputs.dev!.path },
      { id: 'out', path: d.outputs.out!.path },
    ]);
  } finally {
    db.close();
  }
});

test('dry run prints the path and writes nothing', () => {
  const before = snapshot();
  const out = ok(['derivation', 'add', '--dry-run'], JSON.stringify(drv({ env: { name: 'dry' } })));
  assert.match(out, /-dry\.drv\n$/);
  assert.ok(!fs.existsSync(out.trim()));
  assert.equal(snapshot(), before);
});

test('env strings with every special character survive add and show', () => {
  const special = 'q " b \\ n \n t \t r \r $out ${x} \u0001 \u007f é 😀 ～';
  const d = drv({ env: { name: 'special', [special]: special, __json: JSON.stringify({ a: special }), __proto__x: '1', '10': 'ten' }, args: [special] });
  const p = ok(['derivation', 'add'], JSON.stringify(d)).trim();
  const shown = JSON.parse(ok(['derivation', 'show', p])) as Record<string, { env: Record<string, string>; args: string[] }>;
  assert.equal(shown[p]!.env[special], special);
  assert.equal(shown[p]!.args[0], special);
  assert.equal(JSON.parse(shown[p]!.env.__json!).a, special);
  assert.equal(ok(['derivation', 'add', '--dry-run'], JSON.stringify(shown)), `${p}\n`);
});

/** [what is wrong, args, stdin, the message expected after "drover-store: error: "]. */
function hostile(): Array<[string, string[], string, RegExp]> {
  const d = baseJson[basePath]!;
  const wrongOut = `${s.storeDir}/${'0'.repeat(32)}-base`;
  const withOut = (out: object) => JSON.stringify({ [basePath]: { ...d, outputs: { ...d.outputs, out } } });
  const aterm = fs.readFileSync(basePath, 'utf8');
  const fixed = (hashAlgo: string, hash: string) => JSON.stringify(drv({ env: { name: 'f' }, outputs: { out: { hashAlgo, hash } } }));
  return [
    ['truncated ATerm', ['derivation', 'add', '--name', 'x'], aterm.slice(0, 40), /^malformed derivation in stdin at char 15: unterminated string \(the path of output 'dev'\) starting here/],
    ['bad escape in ATerm', ['derivation', 'add', '--name', 'x'], aterm.replace('echo > $out', 'echo \\q'), /^malformed derivation in stdin at char \d+: bad escape '\\q' in an argument/],
    ['unterminated string in ATerm', ['derivation', 'add', '--name', 'x'], 'Derive([("out","/x', /^malformed derivation in stdin at char 15: unterminated string/],
    ['wrong tuple arity in ATerm', ['derivation', 'add', '--name', 'x'], aterm.replace(/\("out","([^"]*)","",""\)/, '("out","$1","")'), /^malformed derivation in stdin at char \d+: expected ',' but found '\)'/],
    ['trailing garbage in ATerm', ['derivation', 'add', '--name', 'x'], aterm + ')', /^malformed derivation in stdin at char \d+: trailing garbage after the derivation: '\)'/],
    ['malformed JSON', ['derivation', 'add'], '{"outputs": {"out": {}}, "system": "x",\n "builder": }', /^stdin: malformed JSON at line 2, column 13 \(char 52\): unexpected '}'/],
    ['truncated JSON', ['derivation', 'add'], JSON.stringify(baseJson).slice(0, 60), /^stdin: malformed JSON at line 1, column \d+ \(char \d+\)/],
    ['JSON of the wrong shape', ['derivation', 'add'], '{"outputs": [], "system": "x", "builder": "b"}', /^stdin: outputs: expected an object, got a list/],
    ['wrong output path', ['derivation', 'add'], withOut({ path: wrongOut }), new RegExp(`^stdin: derivation 'base': output 'out' is given as '${wrongOut}' but its path is '${d.outputs.out!.path}'`)],
    ['wrong env var of an output', ['derivation', 'add'], JSON.stringify({ [basePath]: { ...d, env: { ...d.env, out: wrongOut } } }), /^stdin: derivation 'base': environment variable 'out' is '.*' but must be the path of output 'out'/],
    ['wrong .drv path as key', ['derivation', 'add'], JSON.stringify({ [basePath.replace(/\/[a-z0-9]{32}-/, `/${'1'.repeat(32)}-`)]: d }), /^stdin: derivation 'base': given as '.*1{32}-base\.drv' but its \.drv path is '.*-base\.drv'/],
    ['wrong fixed output path', ['derivation', 'add'], JSON.stringify(drv({ env: { name: 'f' }, outputs: { out: { path: wrongOut, hashAlgo: 'sha256', hash: 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=' } } })), /^stdin: derivation 'f': output 'out' is given as '.*' but its path is '.*-f'/],
    ['bad store name', ['derivation', 'add'], JSON.stringify(drv({ env: { name: 'has space' } })), /^stdin: derivation name 'has space' contains the character ' '/],
    ['bad name in the key', ['derivation', 'add'], JSON.stringify({ [`${s.storeDir}/${'1'.repeat(32)}-bad@name.drv`]: drv() }), /^stdin: derivation name 'bad@name' contains the character '@'/],
    ['input drv missing from the store', ['derivation', 'add'], JSON.stringify(drv({ inputDrvs: { [`${s.storeDir}/${'2'.repeat(32)}-gone.drv`]: ['out'] } })), /^stdin: derivation 'base': input derivation '.*-gone\.drv' is not valid in the store/],
    ['input source missing from the store', ['derivation', 'add'], JSON.stringify(drv({ inputSrcs: [`${s.storeDir}/${'2'.repeat(32)}-gone`] })), /^stdin: derivation 'base': input source '.*-gone' is not valid in the store/],
    ['output path outside the store dir', ['derivation', 'add'], withOut({ path: '/nix/store/00000000000000000000000000000000-base' }), /^stdin: derivation 'base': output 'out': path '\/nix\/store\/0{32}-base' is not in the store dir/],
    ['fixed-output hash of the wrong length', ['derivation', 'add'], fixed('r:sha256', 'abcdef'), /^stdin: outputs\.out: fixed output: hash 'abcdef' has wrong length or characters for a sha256 hash/],
    ['SRI hash of the wrong length', ['derivation', 'add'], fixed('sha512', 'sha512-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='), /^stdin: outputs\.out: fixed output: SRI hash '.*' has the wrong length for sha512/],
    ['unknown algo', ['derivation', 'add'], fixed('r:sha3-256', 'abcd'), /^stdin: outputs\.out: fixed output: unknown hash algorithm 'r:sha3-256'/],
    ['unknown algo in ATerm', ['derivation', 'add', '--name', 'x'], 'Derive([("out","/x","blake3","abcd")],[],[],"s","b",[],[])', /^malformed derivation in stdin at char 20: output 'out': unknown hash algorithm 'blake3'/],
    ['missing input file', ['derivation', 'add', path.join(s.dir, 'nope.json')], '', /^cannot read '.*nope\.json': ENOENT/],
    ['show of a path outside the store', ['derivation', 'show', '/etc/passwd'], '', /^cannot show '\/etc\/passwd': path '\/etc\/passwd' is not in the store dir/],
    ['show of a store path that is no .drv', ['derivation', 'show', srcPath], '', /^cannot show '.*-builder\.sh': not a \.drv file/],
  ];
}

test('hostile input: exit 2, the problem and its place named, the store unchanged', () => {
  const before = snapshot();
  for (const [why, args, input, msg] of hostile()) {
    const r = drover(args, input);
    assert.equal(r.code, 2, `${why}: ${r.stderr}`);
    assert.equal(r.stdout, '', why);
    assert.match(r.stderr, /^drover-store: error: /, why);
    assert.match(r.stderr.replace(/^drover-store: error: /, ''), msg, why);
    assert.equal(snapshot(), before, why);
  }
  // A path that is not valid is exit 1, as in query and export (and Nix's show-derivation).
  const r = drover(['derivation', 'show', `${s.storeDir}/${'3'.repeat(32)}-x.drv`], '');
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^drover-store: error: cannot show '.*-x\.drv': it is not valid in the store\n$/);
});

test('show of a valid .drv whose contents are malformed names the file and the place', () => {
  // Registered by hand, as a damaged store would have it.
  const bad = `${s.storeDir}/${'4'.repeat(32)}-broken.drv`;
  fs.writeFileSync(bad, 'Derive([("out","/x","","")],[],[],"s","b",[],[("a","b")]) junk', { mode: 0o444 });
  const db = new StoreDb(s.stateDir);
  try {
    db.registerValidPaths([{ path: bad, narHash: hashPath(bad).hash, narSize: hashPath(bad).size, references: [] }]);
  } finally {
    db.close();
  }
  const before = snapshot();
  const r = drover(['derivation', 'show', bad]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, `drover-store: error: malformed derivation in '${bad}' at char 57: trailing garbage after the derivation: ' '\n`);
  assert.equal(snapshot(), before);
});
