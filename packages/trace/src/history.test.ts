// Tests of --history (SQLite durations) and of the ETA made from them.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { TraceUsageError } from './errors.js';
import { History } from './history.js';
import { Tracker } from './tracker.js';

test('history keeps durations by name and estimates from the five latest successes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-trace-history-'));
  try {
    const file = join(dir, 'h.sqlite');
    const h1 = await History.open(file);
    assert.equal(h1.estimate('hello-2.12'), null);
    for (const [i, duration] of [100, 1, 2, 3, 4, 5].entries()) {
      h1.record([{ name: 'hello-2.12', drv: '/s/x-hello-2.12.drv', duration, result: 'succeeded' }], 1000 + i);
    }
    h1.record([{ name: 'hello-2.12', drv: '/s/x-hello-2.12.drv', duration: 999, result: 'failed' }], 2000);
    h1.close();
    const h2 = await History.open(file);
    assert.equal(h2.estimate('hello-2.12'), 3);
    h2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file that is not SQLite is a usage error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-trace-history-'));
  try {
    writeFileSync(join(dir, 'bad'), 'this is not a database, just text that is long enough to have a header'.repeat(10));
    await assert.rejects(History.open(join(dir, 'bad')), (e: unknown) => e instanceof TraceUsageError && e.exitCode === 2 && /cannot use history file/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the ETA spreads what is left over the builds that run at once', () => {
  const usual: Record<string, number> = { 'a-1': 60, 'b-1': 30, 'c-1': 90 };
  const t = new Tracker({ estimate: (n) => usual[n] ?? null });
  const d = (n: string): string => `/s/ffffffffffffffffffffffffffffffff-${n}.drv`;
  for (const n of ['a-1', 'b-1', 'c-1']) t.event({ type: 'build-queued', time: 0, source: 'drover', drv: d(n) });
  for (const n of ['a-1', 'b-1']) t.event({ type: 'build-started', time: 0, source: 'drover', drv: d(n), out: null, system: null, log: null, pid: null, host: null });
  // At 20 s: a needs 40 more, b 10 more, c 90: 140 s of work over 2 slots.
  assert.equal(t.eta(20), 70);
  assert.equal(new Tracker().eta(0), 0);
  const unknown = new Tracker();
  unknown.event({ type: 'build-queued', time: 0, source: 'drover', drv: d('z-1') });
  assert.equal(unknown.eta(5), null);
});
