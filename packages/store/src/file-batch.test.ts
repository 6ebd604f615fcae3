// The native file batch: files created, written, given their modes and dates, in one trip.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileBatch } from './file-batch.js';
import { removeTree } from './nar.js';

function tempDir(t: test.TestContext): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-batch-'));
  t.after(() => removeTree(d));
  return d;
}

test('a batch writes each file from its chunks, read-only and dated 1 when canonical', async (t) => {
  const d = tempDir(t);
  const b = new FileBatch(8);
  b.add(Buffer.from(`${d}/a`), 0o644, 0o444, [Buffer.from('hello '), Buffer.alloc(0), Buffer.from('world')]);
  b.add(Buffer.from(`${d}/empty`), 0o644, 0o444, []);
  b.add(Buffer.from(`${d}/x`), 0o755, 0o555, [Buffer.from('#!/bin/sh\n')]);
  const big = Buffer.alloc(3 << 20, 7);
  b.add(Buffer.from(`${d}/big`), 0o644, 0o444, [big.subarray(0, 1), big.subarray(1)]);
  assert.equal(b.bytes, 11 + 10 + big.length);
  await b.write(true);
  assert.equal(fs.readFileSync(`${d}/a`, 'utf8'), 'hello world');
  assert.equal(fs.readFileSync(`${d}/empty`).length, 0);
  assert.ok(fs.readFileSync(`${d}/big`).equals(big));
  for (const [name, mode] of [['a', 0o444], ['empty', 0o444], ['x', 0o555], ['big', 0o444]] as const) {
    const st = fs.statSync(`${d}/${name}`);
    assert.equal(st.mode & 0o7777, mode, name);
    assert.equal(st.mtimeMs, 1000, name);
  }
});

test('without a final mode or canonical, a file keeps its mode and its write time', async (t) => {
  const d = tempDir(t);
  const b = new FileBatch(1);
  b.add(Buffer.from(`${d}/f`), 0o600, -1, [Buffer.from('x')]);
  assert.equal(b.full, true);
  assert.throws(() => b.add(Buffer.from(`${d}/g`), 0o600, -1, []), /full/);
  const before = Date.now();
  await b.write(false);
  const st = fs.statSync(`${d}/f`);
  assert.equal(st.mode & 0o7777, 0o600);
  assert.ok(st.mtimeMs >= before - 2000);
});

test('a path that exists, even as a symlink, stops the batch there, naming it; the symlink is not followed', async (t) => {
  const d = tempDir(t);
  fs.writeFileSync(`${d}/target`, 'untouched');
  fs.symlinkSync(`${d}/target`, `${d}/link`);
  const b = new FileBatch(4);
  b.add(Buffer.from(`${d}/first`), 0o644, 0o444, [Buffer.from('1')]);
  b.add(Buffer.from(`${d}/link`), 0o644, 0o444, [Buffer.from('evil')]);
  b.add(Buffer.from(`${d}/after`), 0o644, 0o444, [Buffer.from('3')]);
  await assert.rejects(b.write(true), (e: NodeJS.ErrnoException) => {
    assert.equal(e.code, 'EEXIST');
    assert.equal(e.syscall, 'open');
    assert.equal(e.path, `${d}/link`);
    assert.match(e.message, /^EEXIST: .*, open '.*\/link'$/);
    return true;
  });
  assert.equal(fs.readFileSync(`${d}/target`, 'utf8'), 'untouched');
  assert.equal(fs.readFileSync(`${d}/first`, 'utf8'), '1');
  assert.equal(fs.existsSync(`${d}/after`), false);
});

test('a missing directory and a path longer than PATH_MAX fail as open(2) would', async (t) => {
  const d = tempDir(t);
  const missing = new FileBatch(1);
  missing.add(Buffer.from(`${d}/no/such`), 0o644, 0o444, []);
  await assert.rejects(missing.write(true), { code: 'ENOENT', syscall: 'open' });
  const long = new FileBatch(1);
  long.add(Buffer.from(`${d}/${'d/'.repeat(2500)}f`), 0o644, 0o444, []);
  await assert.rejects(long.write(true), { code: 'ENAMETOOLONG', syscall: 'open' });
});

test('a batch counts the memory its chunks keep alive: each buffer behind them once, whole', (t) => {
  const d = tempDir(t);
  const slab = Buffer.alloc(1 << 20);
  const b = new FileBatch(4);
  b.add(Buffer.from(`${d}/a`), 0o644, 0o444, [slab.subarray(0, 10), slab.subarray(10, 30)]);
  b.add(Buffer.from(`${d}/b`), 0o644, 0o444, [slab.subarray(30, 40)]);
  assert.equal(b.bytes, 40);
  assert.equal(b.held, slab.buffer.byteLength);
  const other = Buffer.alloc(100000);
  b.add(Buffer.from(`${d}/c`), 0o644, 0o444, [other.subarray(5, 6)]);
  assert.equal(b.held, slab.buffer.byteLength + other.buffer.byteLength);
});
