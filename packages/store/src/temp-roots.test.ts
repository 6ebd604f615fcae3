// Tests for temp-roots.ts: the roots file as Nix's collector reads it, and the GC lock it waits for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { addTempRoots } from './temp-roots.js';
import { tryLock } from './locks.js';

const LOCKS_JS = fileURLToPath(new URL('./locks.js', import.meta.url));

test('roots go to STATE/temproots/PID, NUL-ended, in a file this process keeps locked', (t) => {
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-temproots-'));
  t.after(() => fs.rmSync(state, { recursive: true, force: true }));
  addTempRoots(state, ['/s/aaa-x', '/s/bbb-y']);
  addTempRoots(state, []);
  addTempRoots(state, ['/s/ccc-z']);
  const file = path.join(state, 'temproots', String(process.pid));
  assert.equal(fs.readFileSync(file, 'utf8'), '/s/aaa-x\0/s/bbb-y\0/s/ccc-z\0');
  // What Nix's collector tries: a lock it gets only from a dead owner.
  assert.equal(tryLock(file), undefined, 'the owner is alive: the file is locked');
});

test('adding roots waits while a collector holds gc.lock', async (t) => {
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-temproots-gc-'));
  t.after(() => fs.rmSync(state, { recursive: true, force: true }));
  // A stand-in collector in another process: gc.lock exclusive for 400 ms.
  const script = `import { lockSync } from ${JSON.stringify(LOCKS_JS)}; const l = lockSync(${JSON.stringify(path.join(state, 'gc.lock'))}); console.log('held'); setTimeout(() => l.release(), 400);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const t0 = Date.now();
  addTempRoots(state, ['/s/ddd-w']);
  assert.ok(Date.now() - t0 >= 250, `waited ${Date.now() - t0} ms`);
  await new Promise((r) => child.once('exit', r));
});
