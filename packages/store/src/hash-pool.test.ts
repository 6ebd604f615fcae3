// Tests for hash-pool.ts: the fast NAR hash equals hashPath, canonicalisation, parallel order, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { hashAndCanonicalise, hashPaths, HashPool, PathReadError } from './hash-pool.js';
import { hashPath } from './nar.js';
import { makeTrickyTree, tempStore } from './testing.js';

test('the walking hash equals hashPath on the tricky tree, and canonicalises it', (t) => {
  const s = tempStore('drover-hashpool-');
  t.after(s.cleanup);
  const tree = path.join(s.dir, 'tree');
  makeTrickyTree(tree);
  const want = hashPath(tree);
  const got = hashAndCanonicalise(tree, { hash: true, canonicalise: false });
  assert.equal(got.hash.toString('hex'), want.hash.hex);
  assert.equal(got.size, want.size);
  const again = hashAndCanonicalise(tree, { hash: true, canonicalise: true });
  assert.equal(again.hash.toString('hex'), want.hash.hex, 'canonicalising does not change the NAR');
  for (const name of fs.readdirSync(tree, { recursive: true }) as string[]) {
    const st = fs.lstatSync(path.join(tree, name));
    if (st.isSymbolicLink()) continue;
    assert.ok([0o444, 0o555].includes(st.mode & 0o7777), `${name} mode ${(st.mode & 0o7777).toString(8)}`);
    assert.equal(st.mtimeMs, 1000, `${name} mtime`);
  }
});

test('many paths hash in parallel, results in input order; a missing path is a PathReadError naming it', async (t) => {
  const s = tempStore('drover-hashpool-');
  t.after(s.cleanup);
  fs.mkdirSync(s.dir, { recursive: true });
  const files = Array.from({ length: 600 }, (_, i) => {
    const f = path.join(s.dir, `f${i}`);
    fs.writeFileSync(f, `file ${i}\n`.repeat(i % 17));
    return f;
  });
  const got = await hashPaths(files, { threads: 2 });
  files.forEach((f, i) => assert.equal(got[i]!.narHash.hex, hashPath(f).hash.hex, f));
  await assert.rejects(hashPaths([...files, path.join(s.dir, 'nope')], { threads: 2 }), (e: unknown) => e instanceof PathReadError && /'.*nope' does not exist on disk/.test(e.message));
});

test('one pool of threads serves a hashing pass and then a canonicalising pass over the same paths', async (t) => {
  const s = tempStore('drover-hashpool-');
  t.after(s.cleanup);
  fs.mkdirSync(s.dir, { recursive: true });
  const files = Array.from({ length: 3000 }, (_, i) => {
    const f = path.join(s.dir, `f${i}`);
    fs.writeFileSync(f, `file ${i}\n`.repeat(i % 5), { mode: i % 2 ? 0o755 : 0o644 });
    return f;
  });
  const pool = new HashPool(2, { minPaths: 0 });
  t.after(() => pool.close());
  const got = await pool.run(files, { hash: true });
  files.forEach((f, i) => assert.equal(got[i]!.narHash.hex, hashPath(f).hash.hex, f));
  await pool.run(files, { hash: false, canonicalise: true });
  files.forEach((f, i) => {
    const st = fs.statSync(f);
    assert.equal(st.mode & 0o7777, i % 2 ? 0o555 : 0o444, f);
    assert.equal(st.mtimeMs, 1000, f);
  });
  await assert.rejects(pool.run([files[0]!, path.join(s.dir, 'gone')], { hash: false }), (e: unknown) => e instanceof PathReadError && /'.*gone' does not exist on disk/.test(e.message));
});

test('a single-file path is hashed through one descriptor: same hash and size as hashPath, canonicalised, and a symlink, FIFO or directory still walked', async (t) => {
  const s = tempStore('drover-hashpool-');
  t.after(s.cleanup);
  fs.mkdirSync(s.dir, { recursive: true });
  const made: string[] = [];
  for (const [name, body, mode] of [
    ['plain', 'seven!\n', 0o644],
    ['exec', '#!/bin/sh\necho hi\n', 0o755],
    ['empty', '', 0o600],
    ['eight', '12345678', 0o444],
  ] as const) {
    const f = path.join(s.dir, name);
    fs.writeFileSync(f, body, { mode });
    fs.chmodSync(f, mode);
    made.push(f);
  }
  const link = path.join(s.dir, 'link');
  fs.symlinkSync('plain', link);
  const dir = path.join(s.dir, 'dir');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'inside'), 'x');
  for (const p of [...made, link, dir]) {
    const want = hashPath(p);
    const got = hashAndCanonicalise(p, { hash: true, canonicalise: true });
    assert.equal(got.hash.toString('hex'), want.hash.hex, p);
    assert.equal(got.size, want.size, p);
  }
  made.forEach((f, i) => {
    const st = fs.statSync(f);
    assert.equal(st.mode & 0o7777, i === 1 ? 0o555 : 0o444, f);
    assert.equal(st.mtimeMs, 1000, f);
  });
  // Checking existence only: a dangling symlink exists, a missing path does not.
  const dangling = path.join(s.dir, 'dangling');
  fs.symlinkSync('nowhere', dangling);
  await hashPaths([dangling, ...made], { hash: false, threads: 1 });
  await assert.rejects(hashPaths([dangling, path.join(s.dir, 'missing')], { hash: false, threads: 1 }), /'.*missing' does not exist on disk/);
  assert.throws(() => hashAndCanonicalise(path.join(s.dir, 'missing'), { hash: true, canonicalise: true }), { code: 'ENOENT' });
  const fifo = path.join(s.dir, 'fifo');
  spawnSync('mkfifo', [fifo]);
  assert.throws(() => hashAndCanonicalise(fifo, { hash: true, canonicalise: true }), /is not a regular file, directory or symlink/);
});

test('checking and canonicalising passes run natively for single files and walk the rest: directories, symlinks; a FIFO or a missing path is refused by name', async (t) => {
  const s = tempStore('drover-hashpool-');
  t.after(s.cleanup);
  fs.mkdirSync(s.dir, { recursive: true });
  const files = Array.from({ length: 5000 }, (_, i) => {
    const f = path.join(s.dir, `f${i}`);
    fs.writeFileSync(f, `${i}`, { mode: i % 3 ? 0o644 : 0o755 });
    if (i % 7 === 0) fs.utimesSync(f, 1, 1);
    return f;
  });
  const dir = path.join(s.dir, 'dir');
  fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'sub', 'x'), 'x', { mode: 0o755 });
  const link = path.join(s.dir, 'link');
  fs.symlinkSync('f1', link);
  const paths = [...files.slice(0, 2500), dir, link, ...files.slice(2500)];
  const pool = new HashPool(2);
  t.after(() => pool.close());
  await pool.run(paths, { hash: false });
  assert.equal(fs.statSync(files[1]!).mode & 0o7777, 0o644, 'checking existence changes nothing');
  await pool.run(paths, { hash: false, canonicalise: true });
  files.forEach((f, i) => {
    const st = fs.statSync(f);
    assert.equal(st.mode & 0o7777, i % 3 ? 0o444 : 0o555, f);
    assert.equal(st.mtimeMs, 1000, f);
  });
  for (const [p, mode] of [[dir, 0o555], [path.join(dir, 'sub'), 0o555], [path.join(dir, 'sub', 'x'), 0o555]] as const) {
    assert.equal(fs.statSync(p).mode & 0o7777, mode, p);
    assert.equal(fs.statSync(p).mtimeMs, 1000, p);
  }
  assert.equal(fs.lstatSync(link).mtimeMs, 1000, 'the symlink itself is dated');
  const fifo = path.join(s.dir, 'fifo');
  spawnSync('mkfifo', [fifo]);
  await assert.rejects(pool.run([...files, fifo], { hash: false, canonicalise: true }), (e: unknown) => e instanceof PathReadError && /'.*fifo': .*not a regular file, directory or symlink/.test(e.message));
  await assert.rejects(pool.run([...files, path.join(s.dir, 'gone')], { hash: false, canonicalise: true }), /'.*gone' does not exist on disk/);
  await assert.rejects(pool.run([path.join(s.dir, 'f1', 'under-a-file')], { hash: false }), /cannot read '.*under-a-file': ENOTDIR: not a directory$/);
  await assert.rejects(pool.run([files[0]!, `${files[1]}\0/etc/passwd`, files[2]!], { hash: true }), (e: unknown) => e instanceof PathReadError && /null bytes/.test(e.message));
});

test('native hashing of single files equals hashPath at every length around SHA-256 block edges and read-buffer edges, up to and past the native size limit, whatever bytes the names hold', async (t) => {
  const s = tempStore('drover-hashpool-');
  t.after(s.cleanup);
  fs.mkdirSync(s.dir, { recursive: true });
  const { randomFillSync } = await import('node:crypto');
  const bytes = randomFillSync(Buffer.alloc((1 << 20) + 1));
  const sizes = [...Array.from({ length: 300 }, (_, i) => i), 4095, 4096, 4097, (16 << 10) - 1, 16 << 10, (16 << 10) + 1, 65536 + 7, (128 << 10) - 1, 128 << 10, (128 << 10) + 1, (256 << 10) + 3, (1 << 20) - 1, 1 << 20, (1 << 20) + 1];
  const files = sizes.map((n, i) => {
    // Names of several bytes per character: the native jobs find each path by byte offset.
    const f = path.join(s.dir, i % 3 ? `f${i}` : `f${i}-é-ü-€`);
    fs.writeFileSync(f, bytes.subarray(0, n), { mode: i % 2 ? 0o755 : 0o644 });
    return f;
  });
  const pool = new HashPool(2);
  t.after(() => pool.close());
  const got = await pool.run(files, { hash: true });
  files.forEach((f, i) => {
    const want = hashPath(f);
    assert.equal(got[i]!.narHash.hex, want.hash.hex, `${sizes[i]} bytes`);
    assert.equal(got[i]!.narSize, want.size, `${sizes[i]} bytes`);
    assert.equal(got[i]!.canonicalised, false);
  });
  assert.equal(fs.statSync(files[1]!).mode & 0o7777, 0o755, 'hashing alone changes nothing');
  pool.openGate();
  const again = await pool.run(files, { hash: true, canonicaliseOnceOpen: true });
  files.forEach((f, i) => {
    assert.equal(again[i]!.narHash.hex, got[i]!.narHash.hex);
    assert.equal(again[i]!.canonicalised, true, f);
    assert.equal(fs.statSync(f).mode & 0o7777, i % 2 ? 0o555 : 0o444, f);
    assert.equal(fs.statSync(f).mtimeMs, 1000, f);
  });
});

test('runs that overlap on one pool each get their own answers (the threads serve one pass at a time)', async (t) => {
  const s = tempStore('drover-hashpool-overlap-');
  t.after(s.cleanup);
  fs.mkdirSync(s.dir, { recursive: true });
  // Bigger than the native limit, so the threads hash them; contents differ per file.
  const files = Array.from({ length: 40 }, (_, i) => {
    const f = path.join(s.dir, `f${i}`);
    fs.writeFileSync(f, Buffer.alloc(20_000 + i, i));
    return f;
  });
  const pool = new HashPool(2, { minPaths: 0 });
  try {
    const [a, b, c] = await Promise.all([pool.run(files.slice(0, 15)), pool.run(files.slice(15, 30)), pool.run(files.slice(30))]);
    const got = [...a, ...b, ...c].map((r) => r!.narHash.hex);
    assert.deepEqual(got, files.map((f) => hashPath(f).hash.hex));
  } finally {
    await pool.close();
  }
});
