// Tests for the NAR: byte-for-byte against Nix's fixtures, and every kind of hostile archive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ENTRY_START, STREAM_END, encodeTrailer } from './export-format.js';
import { FIXTURES, STORE_BIN, listTree, makeTrickyTree, narString, run, tempStore, u64le } from './testing.js';
import { hashFile } from './nar.js';
import { NarFormatError } from './errors.js';

const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'nar/expected.json'), 'utf8'));
const trickyNar = fs.readFileSync(path.join(FIXTURES, 'nar/tricky.nar'));

test('dump of the tricky tree equals the NAR Nix wrote', (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  makeTrickyTree(path.join(s.dir, 'tree'));
  const r = run(STORE_BIN, ['dump', path.join(s.dir, 'tree')]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdoutBytes.equals(trickyNar), 'NAR bytes differ from nix-store --dump');
});

test('restore then dump reproduces the archive, symlinks and modes included', (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  const dest = path.join(s.dir, 'restored');
  const r = run(STORE_BIN, ['restore', dest], { input: trickyNar });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.readlinkSync(path.join(dest, 'abs-link')), '/etc/passwd');
  assert.equal(fs.readlinkSync(path.join(dest, 'dangling-link')), 'does/not/exist');
  assert.ok(fs.statSync(path.join(dest, 'exec.sh')).mode & 0o100);
  assert.ok(run(STORE_BIN, ['dump', dest]).stdoutBytes.equals(trickyNar));
});

test('the threaded and inline NAR streams agree with Nix, run after run', async (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  const tree = path.join(s.dir, 'tree');
  makeTrickyTree(tree);
  const { hashPathAsync, hashPath } = await import('./nar.js');
  assert.equal(hashPath(tree).hash.hex, expected.hashes.sha256.base16);
  for (let i = 0; i < 20; i++) assert.equal((await hashPathAsync(tree)).hash.hex, expected.hashes.sha256.base16, `run ${i}`);
  const { narStreamThreaded } = await import('./nar-threaded.js');
  const chunks: Buffer[] = [];
  for await (const c of narStreamThreaded(tree)) chunks.push(c);
  assert.ok(Buffer.concat(chunks).equals(trickyNar));
});

test('hash prints every type and encoding as Nix does', (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  const tree = path.join(s.dir, 'tree');
  makeTrickyTree(tree);
  for (const type of ['md5', 'sha1', 'sha256', 'sha512']) {
    for (const enc of ['base16', 'base32', 'base64', 'sri']) {
      const r = run(STORE_BIN, ['hash', '--type', type, `--${enc}`, tree]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${expected.hashes[type][enc]}\n`, `${type} ${enc}`);
    }
    const flat = run(STORE_BIN, ['hash', '--flat', '--type', type, path.join(tree, 'plain')]);
    assert.equal(flat.stdout, `${expected.hashes[type]['flat-base16']}\n`);
  }
  assert.equal(run(STORE_BIN, ['hash', tree]).stdout, `${expected.hashes.sha256.base16}\n`, 'default is sha256 base16');
});

test('convert-hash converts between all encodings', () => {
  const h = expected.hashes.sha512;
  for (const from of ['base16', 'base32', 'base64', 'sri']) {
    for (const to of ['base16', 'base32', 'base64', 'sri']) {
      const r = run(STORE_BIN, ['convert-hash', '--type', 'sha512', '--to', to, h[from]]);
      assert.equal(r.stdout, `${h[to]}\n`, `${from} -> ${to}: ${r.stderr}`);
    }
  }
  const bad = run(STORE_BIN, ['convert-hash', '--to', 'base32', 'sha256:nothex']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^drover-store: error: hash 'sha256:nothex'/);
});

// --- hostile archives -------------------------------------------------------------------

const str = narString;
const nar = (...parts: (string | Buffer)[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? str(p) : p)));
const file = (contents: string) => ['(', 'type', 'regular', 'contents', contents, ')'];
const entry = (name: string | Buffer, node: (string | Buffer)[]) => ['entry', '(', 'name', typeof name === 'string' ? name : str(name), 'node', ...node, ')'];
const dir = (...entries: (string | Buffer)[][]) => ['(', 'type', 'directory', ...entries.flat(), ')'];
const u64 = u64le;

const good = nar('nix-archive-1', ...dir(entry('a', file('x')), entry('b', file('y'))));
const hostile: [string, Buffer, RegExp][] = [
  ['empty input', Buffer.alloc(0), /truncated at byte 0/],
  ['bad magic', nar('nix-archive-2', ...file('x')), /bad magic 'nix-archive-2'/],
  ['truncated in the middle', good.subarray(0, good.length - 20), /truncated/],
  ['truncated file contents', nar('nix-archive-1', '(', 'type', 'regular', 'contents', u64(100n), Buffer.from('short')), /file of 100 bytes declared at byte \d+ ends early/],
  ['trailing garbage', Buffer.concat([good, Buffer.from('garbage!')]), new RegExp(`trailing garbage after the archive at byte ${good.length}$`, 'm')],
  ['entry ..', nar('nix-archive-1', ...dir(entry('..', file('x')))), /entry name '\.\.' is not allowed/],
  ['entry .', nar('nix-archive-1', ...dir(entry('.', file('x')))), /entry name '\.' is not allowed/],
  ['slash in name', nar('nix-archive-1', ...dir(entry('a/b', file('x')))), /contains '\/'/],
  ['NUL in name', nar('nix-archive-1', ...dir(entry(Buffer.from('a\0b'), file('x')))), /contains NUL/],
  ['empty name', nar('nix-archive-1', ...dir(entry('', file('x')))), /is empty/],
  ['unsorted', nar('nix-archive-1', ...dir(entry('b', file('x')), entry('a', file('y')))), /entry 'a' is not sorted \(comes after 'b'\)/],
  ['duplicate', nar('nix-archive-1', ...dir(entry('a', file('x')), entry('a', file('y')))), /duplicate entry 'a'/],
  ['non-zero padding', (() => { const b = Buffer.from(nar('nix-archive-1', ...file('x'))); b[b.length - 16 - 7] = 7; /* first pad byte after 'x' */ return b; })(), /non-zero padding/],
  ['absurd length', nar('nix-archive-1', '(', 'type', 'regular', 'contents', u64(1n << 62n)), /at byte 88: absurd length 4611686018427387904/],
  ['huge name length', nar('nix-archive-1', '(', 'type', 'directory', 'entry', '(', 'name', u64(1_000_000_000n)), /entry name of 1000000000 bytes is longer than the limit of 255/],
  ['unknown type', nar('nix-archive-1', '(', 'type', 'fifo', ')'), /unknown node type 'fifo'/],
  ['bad executable marker', nar('nix-archive-1', '(', 'type', 'regular', 'executable', 'yes'), /longer than the limit of 0/],
  ['empty symlink', nar('nix-archive-1', '(', 'type', 'symlink', 'target', '', ')'), /empty symlink target/],
  ['missing paren', nar('nix-archive-1', 'type', 'regular'), /expected '\(', got 'type'/],
];

for (const [name, bytes, message] of hostile) {
  test(`restore rejects a NAR with ${name}: exit 2, nothing written`, (t) => {
    const s = tempStore();
    t.after(s.cleanup);
    fs.mkdirSync(path.join(s.dir, 'out'));
    const r = run(STORE_BIN, ['restore', path.join(s.dir, 'out', 'target')], { input: bytes });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^drover-store: error: standard input: /);
    assert.match(r.stderr, message);
    assert.deepEqual(listTree(path.join(s.dir, 'out')), []);
  });
}

test('a symlink entry cannot be used to write outside the target', (t) => {
  // A symlink named "a" pointing outside, then (unsorted, duplicate) "a" as a directory with a file.
  const s = tempStore();
  t.after(s.cleanup);
  const outside = path.join(s.dir, 'outside');
  fs.mkdirSync(outside);
  const evil = nar('nix-archive-1', ...dir(entry('a', ['(', 'type', 'symlink', 'target', outside, ')']), entry('a', dir(entry('f', file('pwned'))))));
  const r = run(STORE_BIN, ['restore', path.join(s.dir, 'target')], { input: evil });
  assert.equal(r.code, 2);
  assert.deepEqual(listTree(outside), []);
  assert.equal(fs.existsSync(path.join(s.dir, 'target')), false);
});

test('restore refuses an existing target and dump a missing path', (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  fs.writeFileSync(path.join(s.dir, 'exists'), 'keep');
  const r = run(STORE_BIN, ['restore', path.join(s.dir, 'exists')], { input: good });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /already exists/);
  assert.equal(fs.readFileSync(path.join(s.dir, 'exists'), 'utf8'), 'keep');
  const d = run(STORE_BIN, ['dump', path.join(s.dir, 'missing')]);
  assert.equal(d.code, 2);
  assert.match(d.stderr, /cannot read '.*missing'/);
});

test('a NAR nested deeper than the file system allows: exit 2, nothing left, even when input is slow', async (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  const { spawn } = await import('node:child_process');
  // 16 directories of 250-byte names: each directory fits, the file inside does not.
  let node: (string | Buffer)[] = file('deep');
  const fileEntry = (n: (string | Buffer)[]) => dir(entry('f'.repeat(200), n));
  node = fileEntry(node);
  for (let i = 0; i < 16; i++) node = dir(entry('d'.repeat(250), node));
  const bytes = nar('nix-archive-1', ...node);
  // Stop just after the file's header so its open fails while the parser waits for input.
  const cut = bytes.indexOf(str('deep')) + 8;
  const target = path.join(s.dir, 'out');
  const child = spawn(process.execPath, [STORE_BIN, 'restore', target], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.stdin.write(bytes.subarray(0, cut));
  await new Promise((r) => setTimeout(r, 700));
  child.stdin.end(bytes.subarray(cut));
  assert.equal(await exited, 2, stderr);
  assert.match(stderr, /^drover-store: error: standard input: an entry's path is longer than the file system allows/);
  assert.equal(fs.existsSync(target), false);
});

test('a big single file takes the recycled-buffer path and hashes and dumps as the plain walk does', async (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  const big = path.join(s.dir, 'big');
  const { randomFillSync } = await import('node:crypto');
  // 21 MiB + 3 bytes: several 4 MiB reads, a short last one, and padding.
  fs.writeFileSync(big, randomFillSync(Buffer.alloc(21 * 1024 * 1024 + 3)));
  fs.chmodSync(big, 0o755);
  const { hashPath, hashPathAsync, narChunks } = await import('./nar.js');
  assert.equal((await hashPathAsync(big)).hash.hex, hashPath(big).hash.hex);
  const r = run(STORE_BIN, ['dump', big]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdoutBytes.equals(Buffer.concat([...narChunks(big)])));
});

test('an import of a path with more directories than a restore keeps pending: every directory read-only and dated 1', (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  // 5000 directories (past the 4096 a restore finishes early), each with a file; names sorted as NAR wants.
  const names = Array.from({ length: 5000 }, (_, i) => `d${String(i).padStart(5, '0')}`);
  const bytes = nar('nix-archive-1', ...dir(...names.map((n) => entry(n, dir(entry('f', file(n)))))));
  const p = `${s.storeDir}/${'1'.repeat(32)}-many-dirs`;
  const stream = Buffer.concat([ENTRY_START, bytes, encodeTrailer({ path: p, references: [] }), STREAM_END]);
  const r = run(STORE_BIN, ['import'], { input: stream, env: s.env });
  assert.equal(r.code, 0, r.stderr);
  for (const n of [names[0]!, names[4095]!, names[4096]!, names[4999]!]) {
    const st = fs.statSync(path.join(p, n));
    assert.equal(st.mode & 0o7777, 0o555, n);
    assert.equal(st.mtimeMs, 1000, n);
    assert.equal(fs.readFileSync(path.join(p, n, 'f'), 'utf8'), n);
  }
  assert.equal(fs.statSync(p).mode & 0o7777, 0o555);
  assert.equal(run(STORE_BIN, ['dump', p]).stdoutBytes.equals(bytes), true, 'dumps back to the same bytes');
});

test('hash --flat of a directory names it and exits 2, as add-fixed does', (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  const tree = path.join(s.dir, 'tree');
  fs.mkdirSync(tree);
  fs.writeFileSync(path.join(tree, 'f'), 'x');
  assert.throws(() => hashFile(tree), (e: unknown) => e instanceof NarFormatError && e.exitCode === 2 && e.message.startsWith(`cannot hash '${tree}' flat: it is a directory`));
  const r = run(STORE_BIN, ['hash', '--flat', tree]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, `drover-store: error: cannot hash '${tree}' flat: it is a directory, not a regular file (without --flat: the hash of its NAR)\n`);
  // Other files that are not regular have bytes, as Nix reads them (a device, a pipe).
  const p = run(STORE_BIN, ['hash', '--flat', '/dev/null']);
  assert.equal(p.code, 0, p.stderr);
  assert.equal(p.stdout, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n');
});
