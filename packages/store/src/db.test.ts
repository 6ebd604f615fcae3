// Tests for the validity DB: registration invariants, closure queries, batch commits, FailedPaths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Store } from './store.js';
import { NoValidityDbError, RegistrationError, StoreDb, writeFileAtomic, type ValidPathInfo } from './db.js';
import os from 'node:os';
import { StoreDbError } from './errors.js';
import { tryLock } from './locks.js';
import { hashBytes, toBase32 } from './hash.js';
import { hashPath } from './nar.js';
import { dotGraph, queryReferences, queryReferrers, queryReferrersClosure, queryRequisites, InvalidPathError } from './query.js';
import { addFailedPath, clearFailedPaths, isFailedPath, listFailedPaths } from './failed-paths.js';
import { tempStore } from './testing.js';
import { refsOf } from './topo-sort.js';

function setup(t: { after(fn: () => void): void }) {
  const s = tempStore('drover-db-');
  const store = new Store({ storeDir: s.storeDir, stateDir: s.stateDir });
  t.after(() => {
    store.close();
    s.cleanup();
  });
  fs.mkdirSync(s.storeDir, { recursive: true });
  /** Writes a file at a made-up store path and returns its registration. */
  const make = (name: string, references: string[] = [], deriver?: string): ValidPathInfo => {
    const p = `${s.storeDir}/${toBase32(hashBytes('sha256', name).bytes.subarray(0, 20))}-${name}`;
    fs.writeFileSync(p, `${name} ${references.join(' ')}\n`);
    const { hash, size } = hashPath(p);
    return { path: p, narHash: hash, narSize: size, references, deriver };
  };
  return { s, store, db: store.db, make };
}

test('a batch registers whole, references resolved inside it; queries see Nix-shaped results', (t) => {
  const { db, make } = setup(t);
  const libc = make('libc');
  const lib = make('lib', [libc.path]);
  const app = make('app', [lib.path, libc.path]);
  db.registerValidPaths([app, lib, libc]);
  assert.ok(db.isValid(app.path));
  const info = db.queryPathInfo(app.path)!;
  assert.deepEqual(info.references, [lib.path, libc.path].sort());
  assert.equal(info.narHash.hex, app.narHash.hex);
  // References before referrers, whatever the hashes' order.
  const req = queryRequisites(db, [app.path]);
  assert.ok(req.indexOf(libc.path) < req.indexOf(lib.path) && req.indexOf(lib.path) < req.indexOf(app.path));
  assert.deepEqual(new Set(queryReferrersClosure(db, [libc.path])), new Set([libc.path, lib.path, app.path]));
  assert.deepEqual(new Set(queryReferrers(db, [libc.path])), new Set([lib.path, app.path]));
  assert.deepEqual(new Set(queryReferences(db, [app.path])), new Set([lib.path, libc.path]));
  assert.equal(dotGraph(db, [app.path]).filter((l) => l.includes(' -> ')).length, 3);
  assert.throws(() => queryRequisites(db, [`${path.dirname(app.path)}/${'0'.repeat(32)}-nope`]), InvalidPathError);
});

test('pathInfos answers for many paths what queryPathInfo answers for each; invalid ones are absent', (t) => {
  const { db, make } = setup(t);
  const libc = make('libc');
  const lib = make('lib', [libc.path]);
  const other = make('other');
  const app = make('app', [lib.path, libc.path, other.path], lib.path);
  db.registerValidPaths([libc, lib, other, app]);
  const ghost = `${path.dirname(app.path)}/${'0'.repeat(32)}-ghost`;
  const got = db.pathInfos([app.path, ghost, libc.path, lib.path, app.path]);
  assert.deepEqual([...got.keys()].sort(), [app.path, libc.path, lib.path].sort());
  for (const p of [app.path, libc.path, lib.path]) assert.deepEqual(got.get(p), db.queryPathInfo(p), p);
  assert.equal(got.get(app.path)!.references.length, 3);
  assert.equal(db.pathInfos([]).size, 0);
});

test('a dangling reference, a missing path, a foreign path or a cycle registers nothing', (t) => {
  const { s, db, make } = setup(t);
  const a = make('a');
  const ghost = `${s.storeDir}/${'1'.repeat(32)}-ghost`;
  const bad: [ValidPathInfo[], RegExp][] = [
    [[a, { ...make('b'), references: [ghost] }], /its reference '.*-ghost' is not valid and not in the batch/],
    [[a, { ...make('c'), path: ghost }], /'.*-ghost': it does not exist on disk/],
    [[a, { ...make('d'), path: '/elsewhere/' + '2'.repeat(32) + '-x' }], /path: path '\/elsewhere\/.*' is not in the store dir/],
    [[a, { ...make('e'), references: ['/elsewhere/x'] }], /reference of .* is not in the store dir/],
  ];
  for (const [batch, re] of bad) {
    assert.throws(() => db.registerValidPaths(batch), (e: unknown) => e instanceof RegistrationError && e.exitCode === 2 && re.test(e.message), re.source);
    assert.equal(db.countValidPaths(), 0);
  }
  const x = make('x');
  const y = make('y', [x.path]);
  x.references = [y.path];
  assert.throws(() => db.registerValidPaths([x, y]), /cycle detected/);
  assert.equal(db.countValidPaths(), 0);
});

test('re-registering updates hash and size and keeps one row', (t) => {
  const { db, make } = setup(t);
  const a = make('a');
  db.registerValidPaths([a]);
  db.registerValidPaths([{ ...a, narSize: 999 }]);
  assert.equal(db.countValidPaths(), 1);
  assert.equal(db.queryPathInfo(a.path)!.narSize, 999);
});

test('a batch mixing new and valid paths, over several insert chunks, gets every reference right', (t) => {
  const { db, make } = setup(t);
  const old = Array.from({ length: 150 }, (_, i) => make(`old${i}`));
  db.registerValidPaths(old);
  // 300 new paths (two whole chunks of 128 and a tail), each referring to a valid path and
  // to the new path before it; the valid ones are re-registered in the same batch, so ids
  // are no longer one run and every id must be looked up.
  const fresh: ValidPathInfo[] = [];
  for (let i = 0; i < 300; i++) fresh.push(make(`new${i}`, [old[i % old.length]!.path, ...(i > 0 ? [fresh[i - 1]!.path] : [])]));
  db.registerValidPaths([...fresh, ...old.slice(0, 10).map((o) => ({ ...o, narSize: 7 }))]);
  assert.equal(db.countValidPaths(), 450);
  for (let i = 0; i < 300; i++) {
    const refs = [old[i % old.length]!.path, ...(i > 0 ? [fresh[i - 1]!.path] : [])].sort();
    assert.deepEqual(db.queryPathInfo(fresh[i]!.path)!.references, refs, `references of new${i}`);
  }
  assert.equal(db.queryPathInfo(old[3]!.path)!.narSize, 7);
  // Checks are off only while registering: the connection enforces foreign keys again.
  assert.equal(db.db.pragma('foreign_keys', { simple: true }), 1);
  assert.throws(() => db.db.prepare('insert into Refs (referrer, reference) values (999999, 999998)').run(), /FOREIGN KEY/);
});

test('validAmong answers the same whether it looks each path up or reads a small store whole', (t) => {
  const { db, make } = setup(t);
  const made = Array.from({ length: 12 }, (_, i) => make(`va-${i}`));
  const asked = (valid: ValidPathInfo[]) => [...valid.map((i) => i.path), ...Array.from({ length: 200 }, (_, i) => `${made[0]!.path}-not-${i}`)];
  assert.deepEqual(db.validAmong(asked(made)), new Set(), 'an empty store');
  db.registerValidPaths(made.slice(0, 3));
  // 3 rows, 212 asked: the store is read whole.
  assert.deepEqual(db.validAmong(asked(made)), new Set(made.slice(0, 3).map((i) => i.path)));
  db.registerValidPaths(made.slice(3));
  // 12 rows, 14 asked: each is looked up.
  assert.deepEqual(db.validAmong([made[5]!.path, made[11]!.path]), new Set([made[5]!.path, made[11]!.path]));
  assert.deepEqual(db.validAmong([]), new Set());
});

test('a batch said to be unique that repeats a path is refused whole, not registered past the cycle check', (t) => {
  const { db, make } = setup(t);
  const a = make('dup-a');
  const b = make('dup-b', [a.path]);
  assert.throws(() => db.registerValidPaths([{ ...a, references: [b.path] }, b, { ...a, narSize: 999 }], { unique: true }), (e: unknown) => e instanceof RegistrationError && /twice in one batch/.test((e as Error).message));
  assert.equal(db.isValid(a.path), false);
  assert.equal(db.isValid(b.path), false);
});

test('a 20k-path chain: one transaction, and requisites walk it in one query', (t) => {
  const { db, make } = setup(t);
  const infos: ValidPathInfo[] = [];
  for (let i = 0; i < 20_000; i++) infos.push(make(`c${i}`, i > 0 ? [infos[i - 1]!.path] : []));
  db.registerValidPaths(infos);
  const req = queryRequisites(db, [infos[infos.length - 1]!.path]);
  assert.equal(req.length, 20_000);
  assert.equal(req[0], infos[0]!.path);
  assert.equal(req[19_999], infos[19_999]!.path);
});

test('commitPaths moves a batch into place under locks, registers once, and drops copies of valid paths', async (t) => {
  const { s, store, db, make } = setup(t);
  const a = make('a');
  db.registerValidPaths([a]);
  const items = ['n1', 'n2'].map((name) => {
    const info = make(name, [a.path]);
    const tmp = store.tempPath();
    fs.renameSync(info.path, tmp);
    return { tmp, info };
  });
  const dupTmp = store.tempPath();
  fs.writeFileSync(dupTmp, 'whatever');
  const added = await store.commitPaths([...items, { tmp: dupTmp, info: a }]);
  assert.deepEqual(added.sort(), items.map((i) => i.info.path).sort());
  for (const i of items) assert.ok(db.isValid(i.info.path) && fs.existsSync(i.info.path));
  const left = fs.readdirSync(s.storeDir).filter((n) => n.startsWith('.') || n.endsWith('.lock'));
  assert.deepEqual(left, [], 'no temp copies or lock files are left');
});

test('stale temps of dead processes are cleaned, live ones kept', (t) => {
  const { s, store } = setup(t);
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  fs.mkdirSync(path.join(s.storeDir, `.drover-tmp-${dead}-abc`));
  const mine = store.tempPath();
  fs.writeFileSync(mine, 'x');
  assert.equal(store.cleanStaleTemps(), 1);
  assert.ok(fs.existsSync(mine));
});

test('FailedPaths lives in the same DB, beside Nix tables', (t) => {
  const { s, db } = setup(t);
  const p = `${s.storeDir}/${'3'.repeat(32)}-broken`;
  assert.equal(isFailedPath(db, p), false);
  addFailedPath(db, p);
  addFailedPath(db, p + '2');
  assert.equal(isFailedPath(db, p), true);
  assert.deepEqual(listFailedPaths(db).map((f) => f.path), [p, p + '2']);
  assert.equal(clearFailedPaths(db, [p]), 1);
  assert.equal(clearFailedPaths(db), 1);
  assert.deepEqual(listFailedPaths(db), []);
  assert.equal(fs.readFileSync(path.join(s.stateDir, 'db', 'schema'), 'utf8'), '10');
});

test('the three closure walks (lookups, in memory, SQL) give the same graph, both directions', (t) => {
  const { db, make } = setup(t);
  // A random DAG: each path refers to up to three earlier ones, some to itself.
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const infos: ValidPathInfo[] = [];
  for (let i = 0; i < 400; i++) {
    const refs = new Set<string>();
    for (let k = 0; k < 3 && i > 0; k++) if (rand() < 0.7) refs.add(infos[Math.floor(rand() * i)]!.path);
    const info = make(`dag${i}`, [...refs]);
    if (rand() < 0.1) info.references.push(info.path);
    infos.push(info);
  }
  db.registerValidPaths(infos);
  const flat = (g: ReturnType<typeof db.closure>) => g.paths.map((p, i) => `${p} ${[...refsOf(g, i)].map((j) => g.paths[j]).join(',')}`);
  let biggest = 0;
  for (const up of [false, true]) {
    for (const roots of [[infos[399]!.path], [infos[10]!.path, infos[200]!.path], [infos[0]!.path]]) {
      const lookups = flat(db.closure(roots, { up, via: 'lookups' }));
      biggest = Math.max(biggest, lookups.length);
      assert.deepEqual(flat(db.closure(roots, { up, via: 'memory' })), lookups, `memory, up=${up}`);
      assert.deepEqual(flat(db.closure(roots, { up, via: 'sql' })), lookups, `sql, up=${up}`);
      assert.deepEqual(flat(db.closure(roots, { up })), lookups);
    }
  }
  assert.ok(biggest > 100, `the walks compared were too small (${biggest})`);
});

test('db/schema that is not a number, or an older version, is refused naming the file, and nothing is made over it', (t) => {
  const s = tempStore('drover-db-schema-');
  t.after(s.cleanup);
  const dbDir = path.join(s.stateDir, 'db');
  const schema = path.join(dbDir, 'schema');
  const dbFile = path.join(dbDir, 'db.sqlite');
  fs.mkdirSync(dbDir, { recursive: true });
  const cases: [string, RegExp][] = [
    ['junk', /^'.*\/db\/schema' is corrupt: it holds "junk", not a schema version number$/],
    ['', /^'.*\/db\/schema' is corrupt/],
    ['10 junk', /^'.*\/db\/schema' is corrupt/],
    ['-3', /^'.*\/db\/schema' is corrupt/],
    ['7', /^the DB in .*\/db has schema version 7, older than the 10 drover knows; drover does not upgrade/],
    ['11', /^the DB in .*\/db has schema version 11, newer than the 10 drover knows/],
  ];
  for (const [text, re] of cases) {
    fs.writeFileSync(schema, text);
    for (const open of ['create', 'existing', 'or-empty'] as const) {
      assert.throws(
        () => new StoreDb(s.stateDir, { open }),
        (e: unknown) => e instanceof StoreDbError && e.exitCode === 1 && re.test(e.message),
        `schema ${JSON.stringify(text)}, ${open}`,
      );
    }
    assert.equal(fs.readFileSync(schema, 'utf8'), text, 'the schema file is left as it was');
    assert.equal(fs.existsSync(dbFile), false, 'no DB is created beside it');
    const l = tryLock(path.join(dbDir, 'big-lock'));
    assert.ok(l, 'the big-lock is let go');
    l.release();
  }
  // Absent or 0 (as Nix counts it) is a new DB; a number followed by a newline (by hand) is read.
  fs.writeFileSync(schema, '0');
  new StoreDb(s.stateDir).close();
  assert.equal(fs.readFileSync(schema, 'utf8'), '10');
  fs.writeFileSync(schema, '10\n');
  new StoreDb(s.stateDir, { open: 'existing' }).close();
});

test('reading opens change nothing: a missing DB is an error for `existing`, an empty store for `or-empty`', (t) => {
  const s = tempStore('drover-db-readonly-');
  t.after(s.cleanup);
  const p = `${s.storeDir}/${'4'.repeat(32)}-x`;
  const existing = new Store({ storeDir: s.storeDir, stateDir: s.stateDir, open: 'existing' });
  assert.throws(
    () => existing.db,
    (e: unknown) => e instanceof NoValidityDbError && e.exitCode === 1 && e.message.startsWith(`no validity DB at ${path.join(s.stateDir, 'db', 'db.sqlite')}`),
  );
  existing.close();
  const empty = new Store({ storeDir: s.storeDir, stateDir: s.stateDir, open: 'or-empty' });
  assert.equal(empty.db.isValid(p), false);
  assert.deepEqual(empty.db.allValidPaths(), []);
  assert.deepEqual(empty.db.closure([p]).paths, []);
  empty.close();
  assert.deepEqual(fs.readdirSync(s.dir), [], 'neither the store dir nor the state dir was made');
  // Once there is a DB, both modes read it (and a DB without its schema file counts as none).
  const { store, make } = setup(t);
  const info = make('seen');
  store.db.registerValidPaths([info]);
  store.close();
  for (const open of ['existing', 'or-empty'] as const) {
    const r = new Store({ storeDir: store.storeDir, stateDir: store.stateDir, open });
    assert.equal(r.db.isValid(info.path), true, open);
    r.close();
  }
  fs.rmSync(path.join(store.stateDir, 'db', 'schema'));
  assert.throws(() => new StoreDb(store.stateDir, { open: 'existing' }), /no validity DB at .*db\.sqlite \(.*\/db\/schema is missing\)/);
});

test('a db.sqlite that is not a SQLite DB is an error naming it, and is left alone', (t) => {
  const s = tempStore('drover-db-notdb-');
  t.after(s.cleanup);
  const dbDir = path.join(s.stateDir, 'db');
  fs.mkdirSync(dbDir, { recursive: true });
  const dbFile = path.join(dbDir, 'db.sqlite');
  const junk = 'this is not a database, whatever its name says\n'.repeat(20);
  fs.writeFileSync(dbFile, junk);
  fs.writeFileSync(path.join(dbDir, 'schema'), '10');
  for (const open of ['create', 'existing'] as const) {
    assert.throws(
      () => new StoreDb(s.stateDir, { open }),
      (e: unknown) => e instanceof StoreDbError && e.exitCode === 1 && e.message === `cannot open the validity DB ${dbFile}: file is not a database`,
      open,
    );
  }
  assert.equal(fs.readFileSync(dbFile, 'utf8'), junk);
  const l = tryLock(path.join(dbDir, 'big-lock'));
  assert.ok(l, 'the big-lock is let go');
  l.release();
});

test('path info carries the ultimate flag and signatures Nix stores, as Nix reads them', (t) => {
  const { s, db, make } = setup(t);
  const built = make('built');
  const signed = make('signed');
  const plain = make('plain');
  db.registerValidPaths([built, signed, plain]);
  // As Nix's builds and `nix store sign` leave them: ultimate 1, signatures space-separated.
  const raw = spawnSync('sqlite3', [path.join(s.stateDir, 'db', 'db.sqlite'),
    `update ValidPaths set ultimate = 1 where path = '${built.path}'; update ValidPaths set sigs = 'zk:sig2 ak:sig1 zk:sig2' where path = '${signed.path}';`]);
  if (raw.error) return t.skip('no sqlite3 binary');
  assert.equal(raw.status, 0, raw.stderr.toString());
  assert.equal(db.queryPathInfo(built.path)!.ultimate, true);
  assert.deepEqual(db.queryPathInfo(signed.path)!.sigs, ['ak:sig1', 'zk:sig2']);
  const info = db.queryPathInfo(plain.path)!;
  assert.ok(!('ultimate' in info) && !('sigs' in info), 'a path with neither has neither key');
  for (const p of [built.path, signed.path, plain.path]) assert.deepEqual(db.pathInfos([p]).get(p), db.queryPathInfo(p));
});

test("a store write holds Nix's gc.lock shared, waits while a collector holds it, and lets go after", async (t) => {
  const { s, store } = setup(t);
  const gcLock = path.join(s.stateDir, 'gc.lock');
  const src = path.join(s.dir, 'f');
  fs.writeFileSync(src, 'x\n');
  // A collector (exclusive) holds it: the add waits, then goes on once it is released.
  const collector = tryLock(gcLock)!;
  let done = false;
  const adding = store.addToStore(src).then((p) => ((done = true), p));
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(done, false, 'the add went on while a collector held gc.lock');
  assert.deepEqual(fs.readdirSync(s.storeDir).filter((n) => n.startsWith('.drover-tmp-')), [], 'no scratch copy made yet');
  collector.release();
  const added = await adding;
  assert.ok(store.db.isValid(added));
  // During a write, a collector cannot take it; after, it can.
  let during: boolean | undefined;
  await store.withGcLock(async () => {
    const l = tryLock(gcLock);
    during = l !== undefined;
    l?.release();
  });
  assert.equal(during, false);
  const after = tryLock(gcLock);
  assert.ok(after, 'gc.lock is free once the write is done');
  after.release();
});

test('a NAR size of 0 is stored as NULL, as Nix stores it, and reads back as 0', (t) => {
  const { db, make } = setup(t);
  const p = { ...make('zero'), narSize: 0 };
  db.registerValidPaths([p]);
  assert.equal((db.db.prepare('select narSize from ValidPaths where path = ?').get(p.path) as { narSize: number | null }).narSize, null);
  assert.equal(db.queryPathInfo(p.path)!.narSize, 0);
});

test("writeFileAtomic removes the temp siblings of writers that were killed, and no live writer's", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-atomic-'));
  try {
    const file = path.join(dir, 'schema');
    // A pid that is surely gone: a child that has exited.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    fs.writeFileSync(`${file}.tmp-${dead}`, '1');
    fs.writeFileSync(`${file}.tmp-1`, '1'); // init: alive
    fs.writeFileSync(`${file}.tmp-x`, 'not ours');
    writeFileAtomic(file, '10');
    assert.equal(fs.readFileSync(file, 'utf8'), '10');
    assert.deepEqual(fs.readdirSync(dir).sort(), ['schema', 'schema.tmp-1', 'schema.tmp-x']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
