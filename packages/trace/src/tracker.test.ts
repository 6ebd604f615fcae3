// Tests of the build picture the human outputs share: which machine a build is credited to.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Writable } from 'node:stream';
import { TraceReader } from './index.js';
import { Output } from './output.js';
import { TtyRenderer } from './render-tty.js';
import { runBin } from './testing.js';
import { Tracker } from './tracker.js';

const d = (n: string): string => `/nix/store/ffffffffffffffffffffffffffffffff-${n}.drv`;
const o = (n: string): string => `/nix/store/gggggggggggggggggggggggggggggggg-${n}`;

/** The machine column of the tty status for each running build, after the lines of `trace`. */
function runningOn(trace: string[]): string[] {
  const tracker = new Tracker();
  // Not finished: the builds are still running.
  const reader = new TraceReader({ sink: { event: (ev) => tracker.event(ev), passthrough: () => {} }, clock: () => 0 });
  reader.push(Buffer.from(trace.join('\n') + '\n'));
  const tty = new TtyRenderer(new Output(new Writable({ write: (_c, _e, cb) => cb() })), tracker, { now: () => 1, columns: () => 100 });
  return tty.status(1).slice(1).map((l) => l.trim().split(/ +/)[2]!);
}

test('after a hook failure, a local rebuild is credited to the local machine, not the remote one', async () => {
  const trace = [
    `@ build-started ${d('x')} ${o('x')} x86_64-linux /l`,
    `@ build-remote ${d('x')} host1`,
    `@ hook-failed ${d('x')} ${o('x')} 1 ssh died`,
    `@ build-started ${d('x')} ${o('x')} x86_64-linux /l`,
  ];
  assert.deepEqual(runningOn(trace), ['local']);
  const r = await runBin(['--format', 'summary'], [...trace, `@ build-succeeded ${d('x')} ${o('x')}`].join('\n') + '\n');
  assert.equal(r.status, 0);
  assert.match(r.stdout, /\n {2}ok +[\d.]+s {2}local +x\n/);
  assert.doesNotMatch(r.stdout, /host1/);
});

test('a remote build keeps its machine, whether the remote line comes after its start or before it', () => {
  assert.deepEqual(runningOn([`@ build-started ${d('a')} ${o('a')} x86_64-linux /l`, `@ build-remote ${d('a')} host1`]), ['host1']);
  // Nix 1.x's build hook prints its line on its own, so it may come first.
  assert.deepEqual(runningOn([`@ build-remote-start ${d('b')} root@host2`, `@ build-started ${d('b')} - x86_64-linux /l`]), ['root@host2']);
});
