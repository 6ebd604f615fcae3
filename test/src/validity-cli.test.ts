// drover-store's validity commands as a user runs them: queries, dump-db/load-db, verify, failed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Store, addFailedPath } from '@drover/store';
import { STORE_BIN, tempStore } from '@drover/store/testing';
import { drover, exportStream, fakeStorePath, makeChain } from './validity-helpers.js';

function ok(r: { code: number | null; stderr: string; stdout: string }, what: string) {
  assert.equal(r.code, 0, `${what}: ${r.stderr}`);
  return r.stdout;
}

test('queries read paths from argv or stdin, print JSON on request, and --valid exits 1 on invalid paths', (t) => {
  const s = tempStore('drover-cli-');
  t.after(s.cleanup);
  const c = makeChain(s.storeDir, 'q', 4, 100);
  c[3]!.deriver = fakeStorePath(s.storeDir, 'd', 'q-3.drv');
  ok(drover(s.env, ['import'], exportStream(c)), 'import');
  const top = c[3]!.path;
  const req = ok(drover(s.env, ['query', '--requisites', top]), '-R').trim().split('\n');
  assert.deepEqual(req, c.map((p) => p.path));
  assert.equal(ok(drover(s.env, ['query', '-R', '-'], `${top}\n`), '-R -'), req.join('\n') + '\n');
  assert.deepEqual(JSON.parse(ok(drover(s.env, ['query', '--requisites', '--json', top]), 'json')), req);
  assert.deepEqual(JSON.parse(ok(drover(s.env, ['query', '--deriver', '--json', top, c[0]!.path]), 'json')), { [top]: c[3]!.deriver, [c[0]!.path]: null });
  assert.equal(ok(drover(s.env, ['query', '--deriver', c[0]!.path]), 'deriver'), 'unknown-deriver\n');
  const info = JSON.parse(ok(drover(s.env, ['query', '--json', top]), 'info'));
  assert.equal(info[0].references[0], c[2]!.path);
  assert.match(info[0].narHash, /^sha256-[A-Za-z0-9+/]{43}=$/);
  assert.deepEqual(ok(drover(s.env, ['query', '--referrers-closure', c[1]!.path]), 'rc').trim().split('\n'), c.slice(1).map((p) => p.path));
  const ghost = fakeStorePath(s.storeDir, 'ghost', 'ghost');
  const v = drover(s.env, ['query', '--valid', top, ghost]);
  assert.equal(v.code, 1);
  assert.equal(v.stdout, `${top}\n`);
  assert.equal(v.stderr, `drover-store: error: path '${ghost}' is not valid\n`);
  assert.equal(ok(drover(s.env, ['query', '--print-invalid', top, ghost]), 'print-invalid'), `${ghost}\n`);
  const r = drover(s.env, ['query', '--requisites', ghost]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /drover-store: error: path '.*-ghost' is not valid/);
  assert.equal(drover(s.env, ['query', top]).code, 2, 'no query chosen');
  assert.equal(drover(s.env, ['query', '--hash', '--size', top]).code, 2, 'two queries');
  assert.equal(drover(s.env, ['query', '--hash', '/elsewhere/x']).code, 2, 'not in the store');
  // A symlink outside the store (like ./result) leads to its store path.
  const link = path.join(s.dir, 'result');
  fs.symlinkSync(top, link);
  assert.equal(ok(drover(s.env, ['query', '--size', link]), 'via link'), `${JSON.parse(ok(drover(s.env, ['query', '--json', top]), 'j'))[0].narSize}\n`);
});

test('dump-db then load-db into a fresh state dir reproduces the DB', (t) => {
  const s = tempStore('drover-cli-db-');
  t.after(s.cleanup);
  const c = makeChain(s.storeDir, 'db', 5, 100);
  c[4]!.deriver = fakeStorePath(s.storeDir, 'd', 'db-4.drv');
  ok(drover(s.env, ['import'], exportStream(c)), 'import');
  const dump = ok(drover(s.env, ['dump-db']), 'dump-db');
  assert.equal(dump.split('\n').filter((l) => l.startsWith(s.storeDir)).length, 5 + 4 + 1);
  const env2 = { ...s.env, DROVER_STATE_DIR: path.join(s.dir, 'state2') };
  ok(drover(env2, ['load-db'], dump), 'load-db');
  assert.equal(ok(drover(env2, ['dump-db']), 'dump-db 2'), dump);
  assert.equal(ok(drover(env2, ['dump-db', c[4]!.path]), 'dump-db one').split('\n')[0], c[4]!.path);
  ok(drover(env2, ['verify', '--check-contents']), 'verify');
});

test('verify reports missing paths, changed contents and a broken closure, and exits 1', (t) => {
  const s = tempStore('drover-cli-verify-');
  t.after(s.cleanup);
  const c = makeChain(s.storeDir, 'v', 4, 100);
  ok(drover(s.env, ['import'], exportStream(c)), 'import');
  fs.writeFileSync(path.join(s.storeDir, '.drover-tmp-1-leftover'), 'x');
  const clean = drover(s.env, ['verify', '--check-contents']);
  assert.equal(ok(clean, 'clean'), '', 'leftover temps are not problems');
  assert.equal(clean.stderr, '', 'no progress when stderr is not a terminal');
  // On a terminal, --check-contents (long on a big store) shows how far it got.
  const tty = spawnSync('script', ['-qec', [process.execPath, STORE_BIN, 'verify', '--check-contents'].map((a) => `'${a}'`).join(' '), '/dev/null'], { env: { ...process.env, ...s.env } });
  assert.equal(tty.status, 0, tty.stdout.toString());
  assert.match(tty.stdout.toString(), /\r\x1b\[Kchecking contents: 4\/4 paths/);
  fs.chmodSync(c[1]!.path, 0o644);
  fs.writeFileSync(c[1]!.path, 'changed');
  let r = drover(s.env, ['verify']);
  assert.equal(r.code, 0, 'without --check-contents contents are not read');
  r = drover(s.env, ['verify', '--check-contents']);
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`^hash-mismatch ${c[1]!.path} expected sha256:[0-9a-z]{52}, got sha256:`, 'm'));
  fs.rmSync(c[2]!.path, { force: true });
  // A reference row to nothing, as only a DB written without foreign keys can have.
  const q = spawnSync('sqlite3', [path.join(s.stateDir, 'db', 'db.sqlite'), 'pragma foreign_keys=off; insert into Refs values ((select id from ValidPaths where path like "%v-3"), 9999);']);
  assert.equal(q.status, 0, q.stderr.toString());
  r = drover(s.env, ['verify']);
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`^missing ${c[2]!.path} `, 'm'));
  assert.match(r.stdout, new RegExp(`^dangling-reference ${c[3]!.path} reference to row 9999`, 'm'));
  assert.equal(r.stderr, 'drover-store: error: verify found 2 problems (listed on stdout)\n');
});

test('failed lists and clears FailedPaths', (t) => {
  const s = tempStore('drover-cli-failed-');
  t.after(s.cleanup);
  const a = fakeStorePath(s.storeDir, 'f1', 'broken');
  const b = fakeStorePath(s.storeDir, 'f2', 'broken2');
  const store = new Store({ storeDir: s.storeDir, stateDir: s.stateDir });
  addFailedPath(store.db, a);
  addFailedPath(store.db, b);
  store.close();
  assert.equal(ok(drover(s.env, ['failed', '--list']), 'list'), [a, b].sort().join('\n') + '\n');
  ok(drover(s.env, ['failed', '--clear', a]), 'clear');
  assert.equal(ok(drover(s.env, ['failed', '--list']), 'list'), `${b}\n`);
  ok(drover(s.env, ['failed', '--clear', '*']), 'clear all');
  assert.equal(ok(drover(s.env, ['failed', '--list']), 'list'), '');
  assert.equal(drover(s.env, ['failed']).code, 2);
  assert.equal(drover(s.env, ['failed', '--clear']).code, 2);
  assert.equal(drover(s.env, ['failed', '--list', a]).code, 2);
});

test('a user without root imports a directory-shaped path (moved in from the import\'s scratch directory)', (t) => {
  const s = tempStore('drover-cli-nonroot-');
  t.after(s.cleanup);
  const nobody = Number(spawnSync('id', ['-u', 'nobody']).stdout.toString().trim());
  fs.chmodSync(s.dir, 0o755);
  fs.chownSync(s.dir, nobody, -1);
  const src = path.join(s.dir, 'src');
  fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(src, 'sub', 'f'), 'inner\n');
  fs.writeFileSync(path.join(src, 'g'), 'outer\n');
  const asNobody = (args: string[], input?: Buffer) => {
    const r = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, STORE_BIN, ...args], { env: { ...process.env, ...s.env }, input });
    return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString(), bytes: r.stdout };
  };
  const p = ok(asNobody(['add', src]), 'add').trim();
  const stream = asNobody(['export', p]).bytes;
  assert.ok(stream.length > 0);
  // As nobody would find it after a garbage collection: no path, no DB.
  fs.chmodSync(p, 0o755);
  fs.rmSync(p, { recursive: true });
  fs.rmSync(s.stateDir, { recursive: true });
  assert.equal(ok(asNobody(['import'], stream), 'import').trim(), p);
  assert.equal(fs.statSync(p).mode & 0o7777, 0o555, 'the path is read-only again');
  assert.equal(fs.readFileSync(path.join(p, 'sub', 'f'), 'utf8'), 'inner\n');
  assert.deepEqual(fs.readdirSync(s.storeDir).filter((n) => n !== path.basename(p)), [], 'no scratch directory or lock file left');
  ok(asNobody(['verify', '--check-contents']), 'verify');
});

test('export refuses a path whose contents changed, as nix-store --export does: exit 1, and its trailer never written', (t) => {
  const s = tempStore('drover-cli-tamper-');
  t.after(s.cleanup);
  const c = makeChain(s.storeDir, 'tamper', 3, 5000);
  ok(drover(s.env, ['import'], exportStream(c)), 'import');
  // Same size, other bytes (none of them a store path).
  fs.chmodSync(c[1]!.path, 0o644);
  fs.writeFileSync(c[1]!.path, Buffer.alloc(c[1]!.contents.length, 'x'));
  // Export takes the paths named (not their closure), references first.
  const r = drover(s.env, ['export', c[2]!.path, c[1]!.path, c[0]!.path]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^drover-store: error: hash of path '${c[1]!.path}' has changed from 'sha256:[0-9a-z]{52}' to 'sha256:[0-9a-z]{52}'!\n$`));
  assert.ok(r.stdout.includes(c[0]!.path), 'the path before it went out whole');
  assert.ok(!r.stdout.includes(c[1]!.path), 'no trailer: a reader cannot take the changed path for valid');
});
