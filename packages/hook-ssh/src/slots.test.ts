// Tests of slot locks: counting, taking, and freeing when the holder dies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { parseMachines } from './machines.js';
import { Slots } from './slots.js';

test('slots: maxJobs many, counted, released, holder info', () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-slots-'));
  try {
    const [m] = parseMachines('ssh://h x86_64-linux - 2');
    const slots = new Slots(d);
    assert.equal(slots.load(m!), 0);
    const a = slots.tryAcquire(m!)!;
    a.setHolder({ pid: 1, drv: '/s/a.drv', since: 5 });
    const b = slots.tryAcquire(m!)!;
    assert.equal(slots.load(m!), 2);
    assert.equal(slots.tryAcquire(m!), undefined);
    assert.deepEqual(slots.holder(m!, 0), { pid: 1, drv: '/s/a.drv', since: 5 });
    a.release();
    assert.equal(slots.load(m!), 1);
    assert.equal(slots.holder(m!, 0), undefined);
    assert.equal(slots.tryAcquire(m!)!.index, 0);
    b.release();
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
});

test('a slot held by a process that is killed with SIGKILL is free again', async () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-slots-'));
  try {
    const [m] = parseMachines('ssh://h x86_64-linux - 1');
    const slots = new Slots(d);
    const code = `import { Slots } from ${JSON.stringify(new URL('./slots.js', import.meta.url).href)};
      import { parseMachines } from ${JSON.stringify(new URL('./machines.js', import.meta.url).href)};
      const s = new Slots(${JSON.stringify(d)}).tryAcquire(parseMachines('ssh://h x86_64-linux - 1')[0]);
      process.stdout.write(s ? 'held\\n' : 'none\\n'); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    const first = await new Promise<string>((resolve) => child.stdout.once('data', (b: Buffer) => resolve(b.toString())));
    assert.equal(first, 'held\n');
    assert.equal(slots.load(m!), 1);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.equal(slots.load(m!), 0);
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
});
