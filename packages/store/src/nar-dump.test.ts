// Tests for the dump through the native writer: the same bytes as the plain walk into files,
// pipes and appending files, and files that change under it are errors, not wrong archives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { randomFillSync } from 'node:crypto';
import { STORE_BIN, run, tempStore } from './testing.js';
import { spawnSync } from 'node:child_process';
import { dumpNarToFd } from './nar-dump.js';
import { GatherPlan, type GatherError } from './fd-gather.js';
import { narChunks } from './nar.js';
import { DroverError, NarFormatError } from './errors.js';

/**
 * Many small files (several batches), big files, empty and
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

function dumpToFile(s: { dir: string }, root: string, flags = 'w'): Promise<Buffer> {
  const out = path.join(s.dir, `out-${Math.random()}`);
  // An appending file takes no sendfile(2): the writer copies through memory instead.
  if (flags === 'a') fs.writeFileSync(out, '');
  const fd = fs.openSync(out, flags);
  return dumpNarToFd(root, fd)
    .then((n) => {
      const b = fs.readFileSync(out);
      assert.equal(n, b.length, 'returned size is the bytes written');
      return b;
    })
    .finally(() => fs.closeSync(fd));
}

test('the dump writes the plain walk’s bytes to a file, an appending file and a pipe', async (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  const tree = path.join(s.dir, 'tree');
  makeTree(tree);
  const expected = Buffer.concat([...narChunks(tree)]);
  for (const flags of ['w', 'a']) {
    for (let i = 0; i < 2; i++) assert.ok((await dumpToFile(s, tree, flags)).equals(expected), `opened '${flags}', run ${i}`);
  }
  for (const one of ['big-odd', 'empty', 'link', 'empty-dir']) {
    const p = path.join(tree, one);
    assert.ok((await dumpToFile(s, p)).equals(Buffer.concat([...narChunks(p)])), one);
  }
  const r = run(STORE_BIN, ['dump', tree]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdoutBytes.equals(expected), 'the CLI through a pipe');
  // Appending stdout (`>>`), which sendfile(2) refuses.
  const appended = path.join(s.dir, 'appended');
  fs.writeFileSync(appended, 'before;');
  const sh = spawnSync('sh', ['-c', `"$0" dump "$1" >> "$2"`, STORE_BIN, tree, appended], { encoding: 'buffer' });
  assert.equal(sh.status, 0, sh.stderr.toString());
  assert.ok(fs.readFileSync(appended).equals(Buffer.concat([Buffer.from('before;'), expected])), 'the CLI appending to a file');
});

test('a reader that leaves early ends the dump quietly, as `head` expects', (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  const tree = path.join(s.dir, 'tree');
  makeTree(tree);
  const sh = spawnSync('sh', ['-c', '"$0" dump "$1" | head -c 100 | wc -c', STORE_BIN, tree], { encoding: 'utf8' });
  assert.equal(sh.stdout.trim(), '100');
  assert.equal(sh.stderr, '');
});

// A sysfs attribute: lstat says 4096 bytes, reading gives a few. Exactly a file that shrank.
const SHRINKING = '/sys/devices/system/cpu/online';

test('a file shorter than its lstat is an error, never padding', async (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  assert.equal(fs.lstatSync(SHRINKING).size, 4096);
  for (const flags of ['w', 'a']) {
    await assert.rejects(dumpToFile(s, SHRINKING, flags), (e: Error) => {
      assert.ok(e instanceof NarFormatError, `${flags}: ${e}`);
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

test('a file that cannot be read is an I/O error (exit 1) naming the tree and the file', async (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  assert.equal(fs.lstatSync(UNREADABLE).size, 4096);
  {
    await assert.rejects(dumpToFile(s, UNREADABLE), (e: Error) => {
      assert.ok(e instanceof DroverError && e.exitCode === 1, `${e}`);
      assert.equal(e.message, `cannot archive '${UNREADABLE}': EACCES: permission denied, open '${UNREADABLE}'`);
      return true;
    });
  }
  const r = run(STORE_BIN, ['dump', UNREADABLE]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `drover-store: error: cannot archive '${UNREADABLE}': EACCES: permission denied, open '${UNREADABLE}'\n`);
});

const openFds = () => fs.readdirSync('/proc/self/fd').length;

test('a dump that fails leaves no file open, whether the walk or the writer failed', async (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  const tree = path.join(s.dir, 'tree');
  makeTree(tree);
  // Sorted last, after several batches of files were opened ahead and written.
  spawnSync('mkfifo', [path.join(tree, 'zz-fifo')]);
  const before = openFds();
  await assert.rejects(dumpToFile(s, tree), (e: Error) => e instanceof NarFormatError && /zz-fifo' is not a regular file/.test(e.message));
  await assert.rejects(dumpToFile(s, SHRINKING), NarFormatError);
  await assert.rejects(dumpToFile(s, UNREADABLE), DroverError);
  assert.equal(openFds(), before);
});

test('the writer refuses a file that stopped being a regular file (FIFO, symlink, directory) at once, never waiting on it', async (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  fs.mkdirSync(s.dir, { recursive: true });
  const fifo = path.join(s.dir, 'fifo');
  spawnSync('mkfifo', [fifo]);
  const link = path.join(s.dir, 'link');
  fs.symlinkSync('/etc/hostname', link);
  const dir = path.join(s.dir, 'dir');
  fs.mkdirSync(dir);
  const fd = fs.openSync(path.join(s.dir, 'out'), 'w');
  t.after(() => fs.closeSync(fd));
  for (const swapped of [fifo, link, dir]) {
    // As if the walk had seen a regular file there, which was then replaced.
    const plan = new GatherPlan(4, 1 << 12);
    plan.push(Buffer.from('head'));
    assert.ok(plan.file(swapped, 100));
    await assert.rejects(plan.write(fd), (e: GatherError) => e.code === 'ECHANGED' && e.item === 0, swapped);
  }
});
