// Tests of the failure memory: growing back-off, shared through files, cleared by success.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseMachines } from './machines.js';
import { MachineHealth, backoffSeconds } from './machine-health.js';

test('back-off doubles from base up to max', () => {
  const b = { base: 10, max: 60 };
  assert.deepEqual([1, 2, 3, 4, 5, 100].map((n) => backoffSeconds(n, b)), [10, 20, 40, 60, 60, 60]);
});

test('failures are remembered across instances and cleared by a success', () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-health-'));
  try {
    let now = 1_000_000;
    const [m, other] = parseMachines('ssh://a\nssh://b');
    const h1 = new MachineHealth(d, { base: 5, max: 100 }, () => now);
    const h2 = new MachineHealth(d, { base: 5, max: 100 }, () => now);
    assert.equal(h1.backingOff(m!), undefined);
    h1.recordFailure(m!, 'Connection refused');
    const r = h2.backingOff(m!);
    assert.equal(r?.failures, 1);
    assert.equal(r?.lastError, 'Connection refused');
    assert.equal(r?.retryAt, now + 5000);
    assert.equal(h2.backingOff(other!), undefined);
    now += 5000;
    assert.equal(h2.backingOff(m!), undefined, 'retry allowed once the back-off has passed');
    h2.recordFailure(m!, 'timeout');
    assert.equal(h1.backingOff(m!)?.retryAt, now + 10000);
    h1.recordSuccess(m!);
    assert.equal(h2.get(m!), undefined);
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
});

test('a damaged failure record (cut short, edited, not JSON) counts as none, and the next failure starts a fresh one', () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-health-'));
  try {
    const [m] = parseMachines('ssh://a');
    const h = new MachineHealth(d, { base: 5, max: 100 }, () => 1_000_000);
    fs.mkdirSync(h.dir, { recursive: true });
    for (const text of ['{"failures":2,"retryAt":9000000}', '{"failures":"x","lastFailure":1,"retryAt":9e99,"lastError":"e"}', 'null', '{"failures":1,', '[1]']) {
      fs.writeFileSync(path.join(h.dir, `${m!.id}.json`), text);
      assert.equal(h.get(m!), undefined, text);
      assert.equal(h.backingOff(m!), undefined, text);
    }
    assert.equal(h.recordFailure(m!, 'refused').failures, 1);
    assert.deepEqual(h.get(m!), { failures: 1, lastFailure: 1_000_000, retryAt: 1_005_000, lastError: 'refused' });
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
});
