// Tests for locks.ts: exclusion, sharing, timeouts, and release when a holder is killed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FileLock, lock, lockSync, tryLock, tryLockAsync, LockTimeoutError } from './locks.js';

const LOCKS_JS = fileURLToPath(new URL('./locks.js', import.meta.url));

function tempDir(t: { after(fn: () => void): void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-locks-'));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Starts a process that takes the lock, says "held" on stdout, and then waits forever. */
async function holder(file: string, mode: 'shared' | 'exclusive') {
  const code = `const { lockSync } = await import(${JSON.stringify(LOCKS_JS)}); lockSync(${JSON.stringify(file)}, '${mode}'); process.stdout.write('held\\n'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`lock holder exited early with ${c}`)));
  });
  return child;
}

test('an exclusive lock excludes every other lock until released', (t) => {
  const f = path.join(tempDir(t), 'x.lock');
  const a = tryLock(f, 'exclusive');
  assert.ok(a);
  // flock locks belong to the open file description, so a second open in the same process conflicts too.
  assert.equal(tryLock(f, 'exclusive'), undefined);
  assert.equal(tryLock(f, 'shared'), undefined);
  a.release();
  assert.equal(a.held, false);
  const b = tryLock(f, 'exclusive');
  assert.ok(b);
  b.release();
});

test('shared locks coexist and keep exclusive ones out', (t) => {
  const f = path.join(tempDir(t), 's.lock');
  const a = tryLock(f, 'shared')!;
  const b = tryLock(f, 'shared')!;
  assert.ok(a && b);
  assert.equal(tryLock(f, 'exclusive'), undefined);
  a.release();
  assert.equal(tryLock(f, 'exclusive'), undefined, 'one shared holder is still there');
  b.release();
  const c = tryLock(f, 'exclusive');
  assert.ok(c);
  c.release();
});

test('waiting times out with a LockTimeoutError naming the file', async (t) => {
  const f = path.join(tempDir(t), 't.lock');
  const a = lockSync(f);
  const start = Date.now();
  await assert.rejects(lock(f, { timeoutSeconds: 0.3 }), (e: unknown) => e instanceof LockTimeoutError && e.message.includes(f) && e.exitCode === 1);
  assert.ok(Date.now() - start >= 300);
  a.release();
});

test('a waiter gets the lock as soon as the holder releases it', async (t) => {
  const f = path.join(tempDir(t), 'w.lock');
  const a = lockSync(f);
  let told = false;
  const waiting = lock(f, { timeoutSeconds: 10, onWait: () => (told = true) });
  setTimeout(() => a.release(), 100);
  const b = await waiting;
  assert.ok(told);
  assert.ok(b.held);
  b.release();
});

test('release with unlink removes the lock file, and a waiter never holds a lock on an unlinked file', async (t) => {
  const f = path.join(tempDir(t), 'u.lock');
  const a = lockSync(f);
  const waiting = lock(f, { timeoutSeconds: 10 });
  setTimeout(() => a.release({ unlink: true }), 50);
  const b = await waiting;
  assert.ok(fs.existsSync(f), 'the waiter re-created the file it holds');
  assert.equal(fs.statSync(f).ino, fs.fstatSync((b as unknown as { fd: number }).fd).ino);
  b.release({ unlink: true });
  assert.equal(fs.existsSync(f), false);
});

test('release with unlink marks the file stale for a waiter that opened it before (Nix checks its size)', (t) => {
  const f = path.join(tempDir(t), 'n.lock');
  const a = lockSync(f);
  // What Nix's lockPaths holds while it waits: the file opened before the holder let go.
  const waiter = fs.openSync(f, 'r');
  t.after(() => fs.closeSync(waiter));
  assert.equal(fs.fstatSync(waiter).size, 0);
  a.release({ unlink: true });
  assert.equal(fs.existsSync(f), false);
  assert.equal(fs.fstatSync(waiter).size, 1, 'a waiter sees a non-empty file, so it retries');
  const b = lockSync(f);
  assert.equal(fs.statSync(f).size, 0, 'the next holder locks a fresh, empty file');
  b.release();
});

for (const mode of ['exclusive', 'shared'] as const) {
  test(`the kernel releases a ${mode} lock when its holder is killed with SIGKILL`, async (t) => {
    const f = path.join(tempDir(t), 'k.lock');
    const child = await holder(f, mode);
    assert.equal(tryLock(f, 'exclusive'), undefined, 'the child holds the lock');
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    const l = await lock(f, { timeoutSeconds: 5 });
    assert.ok(l.held);
    l.release();
  });
}

test('another process waits for an exclusive lock and gets it after the holder is killed', async (t) => {
  const f = path.join(tempDir(t), 'q.lock');
  const child = await holder(f, 'exclusive');
  const waiting = lock(f, { timeoutSeconds: 10 });
  setTimeout(() => child.kill('SIGKILL'), 150);
  const l = await waiting;
  assert.ok(l.held);
  l.release();
});

test('a lock file that cannot be unlinked is not marked stale, and the lock is still let go', (t) => {
  const d = tempDir(t);
  const held = path.join(d, 'held.lock');
  const fd = fs.openSync(held, 'w+');
  // A name unlink(2) refuses (a directory): the release must close all the same, and not throw.
  const blocker = path.join(d, 'not-a-file');
  fs.mkdirSync(blocker);
  const l = new FileLock(blocker, fd);
  l.release({ unlink: true });
  assert.equal(l.held, false);
  assert.throws(() => fs.fstatSync(fd), { code: 'EBADF' }, 'the descriptor was closed');
  assert.equal(fs.statSync(held).size, 0, "no 'd' in a file still linked");
});

test('tryLockAsync and releaseAsync keep the same rules: exclusion, the stale mark, a fresh file after, and the directory made', async (t) => {
  const f = path.join(tempDir(t), 'sub', 'a.lock');
  const a = await tryLockAsync(f);
  assert.ok(a?.held, 'free: taken, its directory made');
  assert.equal(await tryLockAsync(f), undefined, 'held: not taken');
  assert.equal(tryLock(f), undefined, 'held: not taken by the synchronous form either');
  const waiter = fs.openSync(f, 'r');
  t.after(() => fs.closeSync(waiter));
  const releasing = a!.releaseAsync({ unlink: true });
  assert.equal(a!.held, false, 'released at once, as far as the holder knows');
  await releasing;
  assert.equal(fs.existsSync(f), false, 'unlinked');
  assert.equal(fs.fstatSync(waiter).size, 1, "a waiter's file is marked stale");
  const b = await tryLockAsync(f);
  assert.ok(b?.held);
  assert.equal(fs.statSync(f).size, 0, 'a fresh, empty file');
  await b!.releaseAsync();
  assert.ok(fs.existsSync(f), 'kept without unlink');
  const c = tryLock(f);
  assert.ok(c?.held, 'free again');
  c!.release();
});

test('releaseAsync of a lock file that cannot be unlinked does not mark it, and closes it', async (t) => {
  const d = tempDir(t);
  const held = path.join(d, 'held.lock');
  const fd = fs.openSync(held, 'w+');
  const blocker = path.join(d, 'not-a-file');
  fs.mkdirSync(blocker);
  await new FileLock(blocker, fd).releaseAsync({ unlink: true });
  assert.throws(() => fs.fstatSync(fd), { code: 'EBADF' }, 'the descriptor was closed');
  assert.equal(fs.statSync(held).size, 0, "no 'd' in a file still linked");
});
