// Tests of the summary at scale: a trace as big as a whole distribution's rebuild.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { Output } from './output.js';
import { SummaryRenderer } from './render-summary.js';
import { Tracker } from './tracker.js';

test('summary of 150,000 builds: every one listed, no stack overflow', () => {
  const chunks: Buffer[] = [];
  const sink = new Writable({ write: (c: Buffer, _e, cb) => { chunks.push(c); cb(); } });
  const out = new Output(sink);
  const tracker = new Tracker();
  const summary = new SummaryRenderer(out, new Output(new Writable({ write: (_c, _e, cb) => cb() })), tracker);
  const n = 150_000;
  for (let i = 0; i < n; i++) {
    const drv = `/nix/store/${String(i).padStart(32, '0')}-p${i}.drv`;
    summary.event({ type: 'build-started', time: 0, source: 'drover', drv, out: null, system: null, log: null, pid: null, host: i === 7 ? 'h'.repeat(500) : null });
    summary.event({ type: 'build-succeeded', time: 1, source: 'drover', drv, out: null, duration: 1 });
  }
  summary.end();
  out.flush();
  const text = Buffer.concat(chunks).toString();
  assert.match(text, /^Builds \(150000\):\n/);
  assert.match(text, /\nTotals: 150000 builds: 150000 succeeded, 0 failed;/);
  // One absurd machine name does not widen every row.
  const row = text.split('\n').find((l) => l.includes(' p1\u0020') || l.endsWith(' p1'))!;
  assert.ok(row.length < 120, row);
});
