// drover-store's refusals as a user meets them: the exit code, a message that names the input
// and the place in it (`drover-store: error: ...`), and nothing written that should not be.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Store, addFailedPath } from '@drover/store';
import { STORE_BIN, tempStore } from '@drover/store/testing';
import { drover, exportStream, fakeStorePath, makeChain, nixEnv, registrationText, snapshot, writeOnDisk } from './validity-helpers.js';

/** A failure: exit code, one `drover-store: error:` line matching `re`, nothing on stdout. */
function refused(r: { code: number | null; stdout: string; stderr: string }, code: number, re: RegExp, what: string): void {
  assert.equal(r.code, code, `${what}: exit ${r.code}, stderr ${r.stderr}`);
  assert.equal(r.stdout, '', `${what}: stdout`);
  assert.match(r.stderr, /^drover-store: error: [^\n]*\n$/, `${what}: one error line`);
  assert.match(r.stderr, re, what);
}

function ok(r: { code: number | null; stdout: string; stderr: string }, what: string): string {
  assert.equal(r.code, 0, `${what}: ${r.stderr}`);
  return r.stdout;
}

test('hash --flat of a directory names it and exits 2, as add-fixed does', (t) => {
  const s = tempStore('drover-err-hash-');
  t.after(s.cleanup);
  const tree = path.join(s.dir, 'tree');
  fs.mkdirSync(path.join(tree, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'sub', 'f'), 'x');
  refused(drover(s.env, ['hash', '--flat', tree]), 2, /^drover-store: error: cannot hash '.*\/tree' flat: it is a directory, not a regular file \(without --flat: the hash of its NAR\)\n$/, 'hash --flat DIR');
  refused(drover(s.env, ['add-fixed', 'sha256', tree]), 2, /cannot add '.*\/tree' flat: it is not a regular file/, 'add-fixed DIR');
  assert.deepEqual(fs.readdirSync(s.dir), ['tree'], 'no store or state dir made');
});

test('a corrupt db/schema is refused naming the file, as Nix refuses it; an old version is not re-created', (t) => {
  const s = tempStore('drover-err-schema-');
  t.after(s.cleanup);
  const c = makeChain(s.storeDir, 'sch', 2, 50);
  ok(drover(s.env, ['import'], exportStream(c)), 'import');
  const schema = path.join(s.stateDir, 'db', 'schema');
  const nenv = nixEnv(s.dir, s.storeDir, s.stateDir);
  for (const [text, re] of [
    ['junk', new RegExp(`^drover-store: error: '${schema}' is corrupt: it holds "junk", not a schema version number\\n$`)],
    ['7', new RegExp(`^drover-store: error: the DB in ${path.dirname(schema)} has schema version 7, older than the 10 drover knows; drover does not upgrade Nix's old schemas`)],
  ] as const) {
    fs.writeFileSync(schema, text);
    const before = snapshot(s.dir);
    for (const args of [['query', '--valid', c[0]!.path], ['verify'], ['register-validity']]) {
      refused(drover(s.env, args, ''), 1, re, `${args[0]} with schema ${text}`);
    }
    assert.deepEqual(snapshot(s.dir), before, `schema ${text}: nothing changed`);
    assert.equal(fs.readFileSync(schema, 'utf8'), text);
  }
  // The oracle: Nix 2.8 refuses the corrupt file in the same words.
  fs.writeFileSync(schema, 'junk');
  const n = spawnSync('nix-store', ['-q', '--hash', c[0]!.path], { env: { ...process.env, ...nenv } });
  assert.equal(n.status, 1);
  assert.match(n.stderr.toString(), new RegExp(`error: '${schema}' is corrupt`));
  fs.writeFileSync(schema, '10');
  assert.equal(ok(drover(s.env, ['query', '--valid', c[0]!.path]), 'schema 10 again'), `${c[0]!.path}\n`);
});

test('a state dir that Nix 2.8 made opens, for reading and for writing; a brand-new one is still made', (t) => {
  const s = tempStore('drover-err-nixdb-');
  t.after(s.cleanup);
  const nenv = nixEnv(s.dir, s.storeDir, s.stateDir);
  const n = spawnSync('nix-store', ['--init'], { env: { ...process.env, ...nenv } });
  assert.equal(n.status, 0, n.stderr.toString());
  assert.equal(fs.readFileSync(path.join(s.stateDir, 'db', 'schema'), 'utf8'), '10');
  assert.equal(ok(drover(s.env, ['verify']), 'verify of a DB Nix made'), '');
  assert.equal(ok(drover(s.env, ['dump-db']), 'dump-db of a DB Nix made'), '');
  // drover's own FailedPaths table is not there until drover writes: none failed.
  assert.equal(ok(drover(s.env, ['failed', '--list']), 'failed --list of a DB Nix made'), '');
  const c = makeChain(s.storeDir, 'nixdb', 2, 50);
  ok(drover(s.env, ['import'], exportStream(c)), 'import into a DB Nix made');
  assert.equal(ok(drover(s.env, ['query', '--valid', c[1]!.path]), 'query'), `${c[1]!.path}\n`);
  const fresh = tempStore('drover-err-fresh-');
  t.after(fresh.cleanup);
  ok(drover(fresh.env, ['import'], exportStream(makeChain(fresh.storeDir, 'fresh', 2, 50))), 'import into a new state dir');
  assert.equal(fs.readFileSync(path.join(fresh.stateDir, 'db', 'schema'), 'utf8'), '10');
});

test('reading commands make no DB: verify, dump-db and export say there is none; query sees an empty store', (t) => {
  const s = tempStore('drover-err-nodb-');
  t.after(s.cleanup);
  const p = fakeStorePath(s.storeDir, 'nodb', 'x');
  const none = new RegExp(`^drover-store: error: no validity DB at ${path.join(s.stateDir, 'db', 'db.sqlite')}: check --state-dir or DROVER_STATE_DIR\\n$`);
  refused(drover(s.env, ['verify']), 1, none, 'verify');
  refused(drover(s.env, ['verify', '--check-contents']), 1, none, 'verify --check-contents');
  refused(drover(s.env, ['dump-db']), 1, none, 'dump-db');
  refused(drover(s.env, ['export', p]), 1, none, 'export');
  // No path is valid in a store never written to (a build hook asks a fresh machine this).
  assert.equal(ok(drover(s.env, ['query', '--print-invalid', p]), 'print-invalid'), `${p}\n`);
  refused(drover(s.env, ['query', '--valid', p]), 1, /^drover-store: error: path '.*-x' is not valid\n$/, 'query --valid');
  refused(drover(s.env, ['query', '--requisites', p]), 1, /path '.*-x' is not valid/, 'query -R');
  refused(drover(s.env, ['derivation', 'show', `${p}.drv`]), 1, /it is not valid in the store/, 'derivation show');
  assert.equal(ok(drover(s.env, ['failed', '--list']), 'failed --list'), '', 'no failures in a store never written to');
  assert.deepEqual(fs.readdirSync(s.dir), [], 'neither the store dir nor the state dir was made');
});

test('derivation add takes one FILE, says so in --help, and says so when given two', (t) => {
  const s = tempStore('drover-err-drvadd-');
  t.after(s.cleanup);
  const help = ok(drover(s.env, ['derivation', 'add', '--help']), 'help');
  assert.match(help, /^drover-store derivation add \[file\]\n/);
  const a = path.join(s.dir, 'a.json');
  fs.writeFileSync(a, '{}');
  refused(
    drover(s.env, ['derivation', 'add', a, a]),
    2,
    /^drover-store: error: derivation add reads one FILE \(or - for stdin\), not 2: put several derivations in one JSON map, or run it once per file\n$/,
    'two files',
  );
  refused(drover(s.env, ['derivation', 'add', '--bogus', a]), 2, /Unknown argument: bogus/, 'unknown options are still refused');
  assert.deepEqual(fs.readdirSync(s.dir), ['a.json']);
});

test('a reference cycle in register-validity input names the input and the line of the entry closing it', (t) => {
  const s = tempStore('drover-err-cycle-');
  t.after(s.cleanup);
  const d = { path: fakeStorePath(s.storeDir, 'cy-d', 'd'), contents: Buffer.from('d'), references: [] as string[] };
  const e = { path: fakeStorePath(s.storeDir, 'cy-e', 'e'), contents: Buffer.from('e'), references: [d.path] };
  d.references = [e.path];
  writeOnDisk([d, e]);
  const before = snapshot(s.dir);
  // d is on lines 1-4, e on lines 5-8; the walk from d reaches e, whose reference closes the cycle.
  const r = drover(s.env, ['register-validity'], registrationText([d, e]));
  refused(r, 2, new RegExp(`^drover-store: error: standard input: line 5: cycle detected in the references of '${e.path}' to '${d.path}'\\n$`), 'cycle');
  assert.deepEqual(snapshot(s.dir).filter((l) => !l.startsWith('state')), before, 'no file touched');
});

test('a carriage return in a store path is shown escaped, never raw', (t) => {
  const s = tempStore('drover-err-cr-');
  t.after(s.cleanup);
  const p = `${fakeStorePath(s.storeDir, 'cr', 'p')}\r`;
  const r = drover(s.env, ['import'], exportStream([{ path: p, contents: Buffer.from('p'), references: [] }]));
  refused(r, 2, /store path '.*-p\\x0d': name 'p\\x0d' contains the character '\\x0d' \(allowed: /, 'import');
  assert.ok(!r.stderr.includes('\r'), 'no raw CR');
  const link = fs.mkdtempSync(path.join(s.dir, 'd-'));
  const esc = path.join(link, 'a\x1b[2Jb');
  fs.writeFileSync(esc, 'x');
  const a = drover(s.env, ['add', esc]);
  refused(a, 2, /^drover-store: error: cannot add '.*\/a\\x1b\[2Jb': its name contains the character '\\x1b' \(allowed: /, 'add');
  assert.ok(!a.stderr.includes('\x1b'), 'no raw ESC');
});

test('failed: flags given wrong get the right message; --clear takes store paths of this store only', (t) => {
  const s = tempStore('drover-err-failed-');
  t.after(s.cleanup);
  const f = fakeStorePath(s.storeDir, 'fl', 'broken');
  const store = new Store({ storeDir: s.storeDir, stateDir: s.stateDir });
  addFailedPath(store.db, f);
  store.close();
  refused(drover(s.env, ['failed', f]), 2, /^drover-store: error: to forget the failures of PATH\.\.\., give --clear \(or --list, alone, to print them\)\n$/, 'a path without --clear');
  refused(drover(s.env, ['failed']), 2, /^drover-store: error: choose --list, or --clear PATH\.\.\. \('\*' for all\)\n$/, 'no flag');
  refused(drover(s.env, ['failed', '--list', '--clear', f]), 2, /choose one of --list and --clear, not both/, 'both');
  refused(drover(s.env, ['failed', '--clear']), 2, /--clear needs the paths to forget/, '--clear alone');
  refused(drover(s.env, ['failed', '--clear', '/tmp/x']), 2, new RegExp(`^drover-store: error: path '/tmp/x' is not in the store dir ${s.storeDir}\\n$`), 'outside the store');
  refused(drover(s.env, ['failed', '--clear', `${s.storeDir}/not-a-store-path`]), 2, /does not start with a 32-character Nix base32 hash/, 'not a store path');
  refused(drover(s.env, ['failed', '--clear', '-'], `${f}\n/tmp/y\n`), 2, /path '\/tmp\/y' is not in the store dir/, 'from stdin');
  assert.equal(ok(drover(s.env, ['failed', '--list']), 'list'), `${f}\n`, 'nothing was forgotten');
  // A link such as ./result leads to its store path, as in every command taking paths.
  fs.symlinkSync(f, path.join(s.dir, 'result'));
  ok(drover(s.env, ['failed', '--clear', path.join(s.dir, 'result')]), 'clear via link');
  assert.equal(ok(drover(s.env, ['failed', '--list']), 'list'), '');
});

test('add of a dot-name says so once', (t) => {
  const s = tempStore('drover-err-dot-');
  t.after(s.cleanup);
  const hidden = path.join(s.dir, '.hidden');
  fs.mkdirSync(hidden);
  refused(drover(s.env, ['add', hidden]), 2, /^drover-store: error: cannot add '.*\/\.hidden': its name starts with '\.'\n$/, 'add .hidden');
  refused(drover(s.env, ['add', `${hidden}/.`]), 2, /^drover-store: error: cannot add '.*\/\.hidden\/\.': its name '\.hidden' starts with '\.'\n$/, 'add .hidden/.');
  assert.equal(fs.existsSync(s.storeDir), false);
});

test('load-db quotes an oversized NAR size as typed', (t) => {
  const s = tempStore('drover-err-size-');
  t.after(s.cleanup);
  const p = fakeStorePath(s.storeDir, 'size', 'x');
  const r = drover(s.env, ['load-db'], `${p}\n${'0'.repeat(64)}\n9999999999999999\n\n0\n`);
  refused(r, 2, /^drover-store: error: standard input: line 3: the NAR size 9999999999999999 is larger than the limit 9007199254740991\n$/, 'load-db');
});

test('query --valid and verify report on stderr as errors', (t) => {
  const s = tempStore('drover-err-prefix-');
  t.after(s.cleanup);
  const c = makeChain(s.storeDir, 'pre', 2, 50);
  ok(drover(s.env, ['import'], exportStream(c)), 'import');
  const ghost = fakeStorePath(s.storeDir, 'ghost', 'ghost');
  const v = drover(s.env, ['query', '--valid', c[0]!.path, ghost]);
  assert.equal(v.code, 1);
  assert.equal(v.stdout, `${c[0]!.path}\n`);
  assert.equal(v.stderr, `drover-store: error: path '${ghost}' is not valid\n`);
  fs.rmSync(c[1]!.path, { force: true });
  const r = drover(s.env, ['verify']);
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`^missing ${c[1]!.path} `));
  assert.equal(r.stderr, 'drover-store: error: verify found 1 problem (listed on stdout)\n');
});

test('a db.sqlite that is not a database is named in the error and left alone', (t) => {
  const s = tempStore('drover-err-notdb-');
  t.after(s.cleanup);
  const dbFile = path.join(s.stateDir, 'db', 'db.sqlite');
  fs.mkdirSync(path.dirname(dbFile), { recursive: true });
  fs.writeFileSync(path.join(s.stateDir, 'db', 'schema'), '10');
  const junk = 'not a database\n'.repeat(100);
  fs.writeFileSync(dbFile, junk);
  const p = fakeStorePath(s.storeDir, 'notdb', 'x');
  const re = new RegExp(`^drover-store: error: cannot open the validity DB ${dbFile}: file is not a database\\n$`);
  refused(drover(s.env, ['query', '--valid', p]), 1, re, 'query');
  refused(drover(s.env, ['verify']), 1, re, 'verify');
  refused(drover(s.env, ['register-validity'], ''), 1, re, 'register-validity');
  assert.equal(fs.readFileSync(dbFile, 'utf8'), junk);
});

test('a reader that goes away early (| head) ends the output quietly: exit 0, no stack trace', (t) => {
  const s = tempStore('drover-err-epipe-');
  t.after(s.cleanup);
  // Enough rows that dump-db writes well past a pipe's 64 KiB.
  const c = makeChain(s.storeDir, 'pipe', 1500, 10);
  writeOnDisk(c);
  ok(drover(s.env, ['register-validity', '--hash-given'], registrationText(c, true)), 'register-validity');
  const env = { ...process.env, ...s.env };
  for (const args of [['dump-db'], ['query', '--requisites', c[1499]!.path], ['export', c[1499]!.path]]) {
    const cmd = [process.execPath, STORE_BIN, ...args].map((a) => JSON.stringify(a)).join(' ');
    const r = spawnSync('bash', ['-c', `${cmd} | head -c 100 >/dev/null; echo "\${PIPESTATUS[0]}"`], { env });
    assert.equal(r.stdout.toString(), '0\n', `${args[0]}: ${r.stderr}`);
    assert.equal(r.stderr.toString(), '', `${args[0]}: nothing on stderr`);
  }
});

test('a write to standard output that fails (> /dev/full) is an error, exit 1, as for cat', (t) => {
  const s = tempStore('drover-err-full-');
  t.after(s.cleanup);
  const c = makeChain(s.storeDir, 'full', 3, 10);
  writeOnDisk(c);
  ok(drover(s.env, ['register-validity', '--hash-given'], registrationText(c, true)), 'register-validity');
  const env = { ...process.env, ...s.env };
  // Small outputs: a single write, whose failure the exit could otherwise outrun.
  // And the two that write fd 1 from native threads, not through process.stdout.
  for (const args of [['hash', c[0]!.path], ['query', '--hash', c[2]!.path], ['dump-db'], ['convert-hash', '--to', 'base32', 'sha256:' + '0'.repeat(64)], ['export', c[2]!.path], ['dump', c[0]!.path]]) {
    const full = fs.openSync('/dev/full', 'w');
    const r = spawnSync(process.execPath, [STORE_BIN, ...args], { env, stdio: ['ignore', full, 'pipe'] });
    fs.closeSync(full);
    assert.equal(r.status, 1, `${args[0]}: exit ${r.status}`);
    assert.match(r.stderr.toString(), /^drover-store: error: cannot write to standard output: ENOSPC[^\n]*\n$/, `${args[0]}: one error line`);
  }
});

test('a damaged DB: verify lists what SQLite finds, a line each, then stops; other commands name the file', (t) => {
  const s = tempStore('drover-err-corrupt-');
  t.after(s.cleanup);
  const c = makeChain(s.storeDir, 'cor', 60, 10);
  writeOnDisk(c);
  ok(drover(s.env, ['register-validity', '--hash-given'], registrationText(c, true)), 'register-validity');
  const dbFile = path.join(s.stateDir, 'db', 'db.sqlite');
  const ck = spawnSync('sqlite3', [dbFile, 'pragma wal_checkpoint(TRUNCATE)']);
  assert.equal(ck.status, 0, ck.stderr.toString());
  // Cell pointers of page 3 (one of the ValidPaths b-trees) pointed far off the page.
  const fd = fs.openSync(dbFile, 'r+');
  fs.writeSync(fd, Buffer.alloc(92, 0x55), 0, 92, 2 * 4096 + 8);
  fs.closeSync(fd);
  const v = drover(s.env, ['verify']);
  assert.equal(v.code, 1, v.stderr);
  const lines = v.stdout.trimEnd().split('\n');
  assert.ok(lines.length >= 2, v.stdout);
  for (const l of lines) assert.match(l, new RegExp(`^db-corrupt ${s.stateDir} \\S`), 'one finding a line');
  assert.ok(!lines.some((l) => l.includes('*** in database')), "SQLite's heading is no finding");
  assert.match(v.stderr, /^drover-store: error: verify found \d+ problems \(listed on stdout\)\n$/);
  const d = drover(s.env, ['dump-db']);
  assert.equal(d.code, 1);
  assert.match(d.stderr, new RegExp(`^drover-store: error: the validity DB ${dbFile} is damaged: database disk image is malformed`));
});

test('control characters quoted from any input are shown escaped: registration lines, hashes, file names', (t) => {
  const s = tempStore('drover-err-ctl-');
  t.after(s.cleanup);
  const c = makeChain(s.storeDir, 'ctl', 1, 5);
  writeOnDisk(c);
  for (const [args, input, re] of [
    [['register-validity'], `${c[0]!.path}\n\n\x1b[2J\x00\n`, /line 3: expected the number of references \(a decimal number\), got '\\x1b\[2J\\x00'/],
    [['convert-hash', '--to', 'base32', 'sha256:\x1b]0;pwned\x07'], undefined, /hash 'sha256:\\x1b\]0;pwned\\x07'/],
    [['hash', '\x1b[2Jnope\r'], undefined, /cannot read '\\x1b\[2Jnope\\x0d'/],
  ] as const) {
    const r = drover(s.env, [...args], input);
    refused(r, 2, re, args[0]);
    assert.doesNotMatch(r.stderr, /[\x00\x07\x1b\r]/, `${args[0]}: nothing raw`);
  }
  assert.deepEqual(fs.readdirSync(s.storeDir), [path.basename(c[0]!.path)], 'nothing registered or added');
});
