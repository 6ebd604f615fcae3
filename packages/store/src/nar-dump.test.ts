// Tests for the two-reader dump: the same bytes as the plain walk whoever reads what, and
// files that change under it are errors, not silently wrong archives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { randomFillSync } from 'node:crypto';
import { STORE_BIN, run, tempStore } from './testing.js';
import { dumpNarToFd, writevAllSync } from './nar-dump.js';
import { narChunks } from './nar.js';
import { DroverError, NarFormatError } from './errors.js';

/**
 * Many small files (so the thread starts), files cut into several 1 MiB jobs, empty and
 * executable files, symlinks, deep and empty dirs, and names whose byte order is not their
 * string order or that are not UTF-8 at all.
 */
function makeTree(dir: string): void {
  const data = randomFillSync(Buffer.alloc(3 << 20));
  fs.mkdirSync(dir);
  for (let i = 0; i < 400; i++) {
    const sub = path.join(dir, `d${i % 13}`, `e${i % 5}`);
    fs.mkdirSync(sub, { recursive: true });
    const size = (i * 7919) % 20_000;
    fs.writeFileSync(path.join(sub, `f${i}`), data.subarray(i, i + size), { mode: i % 9 === 0 ? 0o755 : 0o644 });
  }
  fs.writeFileSync(path.join(dir, 'big-odd'), data.subarray(0, (2 << 20) + 1234567 + 3));
  fs.writeFileSync(path.join(dir, 'big-exact'), data.subarray(0, 1 << 20));
  fs.writeFileSync(path.join(dir, 'big-plus-one'), data.subarray(0, (1 << 20) + 1));
  fs.writeFileSync(path.join(dir, 'empty'), '');
  fs.symlinkSync('d0/e0/f0', path.join(dir, 'link'));
  fs.symlinkSync('/nowhere/at/all', path.join(dir, 'dangling'));
  fs.mkdirSync(path.join(dir, 'empty-dir'));
  fs.mkdirSync(path.join(dir, 'a/b/c/d/e/f/g'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'a/b/c/d/e/f/g/deep'), data.subarray(5, 5000));
  // UTF-16 order differs from byte order between U+FFFD and astral characters.
  for (const name of ['\u{1F600}x', '\uFFFDy', 'é', 'Z', '_', 'a b', 'a-b', 'a.b']) fs.writeFileSync(path.join(dir, name), name);
  const utf = path.join(dir, 'utf');
  fs.mkdirSync(utf);
  fs.writeFileSync(Buffer.concat([Buffer.from(`${utf}/`), Buffer.from([0x66, 0xff, 0xfe])]), 'not utf-8');
  fs.writeFileSync(path.join(utf, 'plain'), 'plain');
}

function dumpToFile(s: { dir: string }, root: string, opts: Parameters<typeof dumpNarToFd>[2]): Promise<Buffer> {
  const out = path.join(s.dir, `out-${Math.random()}`);
  const fd = fs.openSync(out, 'w');
  return dumpNarToFd(root, fd, opts)
    .then((n) => {
      const b = fs.readFileSync(out);
      assert.equal(n, b.length, 'returned size is the bytes written');
      return b;
    })
    .finally(() => fs.closeSync(fd));
}

test('the two-reader dump writes the plain walk’s bytes, whoever reads what', async (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  const tree = path.join(s.dir, 'tree');
  makeTree(tree);
  const expected = Buffer.concat([...narChunks(tree)]);
  for (const opts of [{}, { threadAfter: 0 }, { threadAfter: 0, readOnMain: false }, { threadAfter: Infinity }]) {
    for (let i = 0; i < 3; i++) assert.ok((await dumpToFile(s, tree, opts)).equals(expected), `${JSON.stringify(opts)} run ${i}`);
  }
  // One big file alone is cut into jobs too.
  const big = path.join(tree, 'big-odd');
  assert.ok((await dumpToFile(s, big, { threadAfter: 0 })).equals(Buffer.concat([...narChunks(big)])));
  const r = run(STORE_BIN, ['dump', tree]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdoutBytes.equals(expected), 'the CLI through a pipe');
});

// A sysfs attribute: lstat says 4096 bytes, reading gives a few. Exactly a file that shrank.
const SHRINKING = '/sys/devices/system/cpu/online';

test('a file shorter than its lstat is an error from either reader, never padding', async (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  assert.equal(fs.lstatSync(SHRINKING).size, 4096);
  for (const opts of [{ threadAfter: Infinity }, { threadAfter: 0, readOnMain: false }]) {
    await assert.rejects(dumpToFile(s, SHRINKING, opts), (e: Error) => {
      assert.ok(e instanceof NarFormatError, `${JSON.stringify(opts)}: ${e}`);
      assert.match(e.message, /^file '\/sys\/devices\/system\/cpu\/online' changed size while being archived$/);
      return true;
    });
  }
  const r = run(STORE_BIN, ['dump', SHRINKING]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^drover-store: error: file '\/sys\/devices\/system\/cpu\/online' changed size while being archived\n$/);
});

// Write-only sysfs attribute: its open for reading fails (EACCES) even for root.
const UNREADABLE = '/sys/bus/cpu/drivers_probe';

test('a file that cannot be read is an I/O error (exit 1) naming the tree, from either reader', async (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  assert.equal(fs.lstatSync(UNREADABLE).size, 4096);
  for (const opts of [{ threadAfter: Infinity }, { threadAfter: 0, readOnMain: false }]) {
    await assert.rejects(dumpToFile(s, UNREADABLE, opts), (e: Error) => {
      assert.ok(e instanceof DroverError && e.exitCode === 1, `${JSON.stringify(opts)}: ${e}`);
      assert.equal(e.message, `cannot archive '${UNREADABLE}': EACCES: permission denied, open '${UNREADABLE}'`);
      return true;
    });
  }
  const r = run(STORE_BIN, ['dump', UNREADABLE]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `drover-store: error: cannot archive '${UNREADABLE}': EACCES: permission denied, open '${UNREADABLE}'\n`);
});

test('writevAllSync finishes partial writes and keeps the order', (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  const file = path.join(s.dir, 'w');
  const fd = fs.openSync(file, 'w');
  const parts = Array.from({ length: 1500 }, (_, i) => Buffer.from(`part ${i};`));
  writevAllSync(fd, parts.slice());
  fs.closeSync(fd);
  assert.equal(fs.readFileSync(file, 'utf8'), parts.join(''));
});
