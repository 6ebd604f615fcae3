// Tests of the tty view: in tmux as a person sees it, and its redraw rate.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { Output } from './output.js';
import { TtyRenderer } from './render-tty.js';
import { BIN } from './testing.js';
import { Tracker } from './tracker.js';

const d = (n: string): string => `/nix/store/ffffffffffffffffffffffffffffffff-${n}.drv`;
const o = (n: string): string => `/nix/store/gggggggggggggggggggggggggggggggg-${n}`;

test('tty as a person sees it: live status in tmux at several moments of a build', async () => {
  // tmux is a test dependency (.ci/run installs it): fail loudly rather than skip.
  assert.equal(spawnSync('sh', ['-c', 'command -v tmux']).status, 0, 'tmux is not installed (apt-get install -y tmux)');
  const dir = mkdtempSync(join(tmpdir(), 'drover-trace-tty-'));
  const socket = `drover-trace-test-${process.pid}`;
  const tmux = (...args: string[]): string => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
  const screen = (): string[] => tmux('capture-pane', '-p', '-t', 'trace').split('\n').map((l) => l.trimEnd()).filter((l) => l !== '');
  try {
    const fifo = join(dir, 'trace.fifo');
    execFileSync('mkfifo', [fifo]);
    // No --format: on a terminal, tty is the default.
    tmux('new-session', '-d', '-s', 'trace', '-x', '100', '-y', '20',
      `"${process.execPath}" "${BIN}" < "${fifo}"; echo "EXIT=$?"; sleep 30`);
    const w = await open(fifo, 'w');
    const send = (lines: string[]): Promise<unknown> => w.write(lines.join('\n') + '\n');

    await send([
      'these 3 derivations will be built:', `  ${d('alpha-1.0')}`, `  ${d('beta-2.1')}`, `  ${d('gamma-3')}`,
      `@ build-started ${d('alpha-1.0')} ${o('alpha-1.0')} x86_64-linux /l/a`,
      `@ build-started ${d('beta-2.1')} ${o('beta-2.1')} x86_64-linux /l/b`,
      `@ build-remote ${d('beta-2.1')} builder1`,
      '@ download-started /gnu/store/x-src-1.0 https://ci.example/nar/src 4194304',
      '@ download-progress /gnu/store/x-src-1.0 https://ci.example/nar/src 4194304 1048576',
    ]);
    await sleep(700);
    let s = screen();
    // Moment 1: two builds running, one queued, a download at 25 %.
    const head1 = s.find((l) => l.includes('running'));
    assert.ok(head1, s.join('\n'));
    assert.match(head1, /^\[0:0\d\] {2}0\/3 done {2}2 running {2}0 failed {2}1 queued {2}1 downloading {2}ETA \?$/);
    assert.ok(s.some((l) => /^ {2}> alpha-1\.0 {2}local {4}/.test(l)), s.join('\n'));
    assert.ok(s.some((l) => /^ {2}> beta-2\.1 {3}builder1 /.test(l)), s.join('\n'));
    assert.ok(s.some((l) => l === '  v x-src-1.0 25% of 4.0 MiB'), s.join('\n'));
    assert.equal(s.filter((l) => l.includes('running')).length, 1, 'one status block, not a trail of them');

    // Moment 2: no input for a while, yet the clock in the status moves on.
    const elapsed = (lines: string[]): number => Number(/alpha-1\.0 +local +0:(\d\d)/.exec(lines.join('\n'))![1]);
    const before = elapsed(s);
    await sleep(1600);
    s = screen();
    assert.ok(elapsed(s) > before, s.join('\n'));

    // Moment 3: one build done, one failed, the third running; other output scrolls above the status.
    await send([
      `@ build-succeeded ${d('alpha-1.0')} ${o('alpha-1.0')}`,
      'a line that is not a trace line',
      `@ build-failed ${d('beta-2.1')} ${o('beta-2.1')} 100 builder for '${d('beta-2.1')}' failed with exit code 2`,
      `@ build-started ${d('gamma-3')} ${o('gamma-3')} x86_64-linux /l/c`,
      '@ download-succeeded /gnu/store/x-src-1.0 https://ci.example/nar/src 4194304',
    ]);
    await sleep(700);
    s = screen();
    const okAt = s.findIndex((l) => /^ok {6}alpha-1\.0 \(\d+(\.\d)?s\)$/.test(l));
    const passAt = s.indexOf('a line that is not a trace line');
    const failAt = s.findIndex((l) => l === 'FAILED  beta-2.1 on builder1: builder failed with exit code 2');
    const headAt = s.findIndex((l) => l.includes('running'));
    assert.ok(okAt >= 0 && passAt > okAt && failAt > passAt && headAt > failAt, s.join('\n'));
    assert.match(s[headAt]!, /^\[0:0\d\] {2}2\/3 done {2}1 running {2}1 failed {2}0 queued {2}ETA 0:0\d$/);
    assert.ok(/^ {2}> gamma-3 +local +0:0\d$/.test(s[headAt + 1]!), s.join('\n'));
    assert.equal(s.filter((l) => l.includes('running')).length, 1);

    // Moment 4: the input ends; the status gives way to the final line and the exit status.
    await send([`@ build-succeeded ${d('gamma-3')} ${o('gamma-3')}`]);
    await w.close();
    await sleep(700);
    s = screen();
    assert.ok(s.some((l) => /^FAILED: 2 built, 1 failed, 1 downloaded \(4\.0 MiB\) in \d+(\.\d)?s$/.test(l)), s.join('\n'));
    assert.ok(s.includes('EXIT=1'), s.join('\n'));
    assert.ok(!s.some((l) => l.includes('running')), s.join('\n'));
  } finally {
    spawnSync('tmux', ['-L', socket, 'kill-server']);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the status is redrawn at most about ten times a second, however many events arrive', async () => {
  let written = '';
  const sink = new Writable({ write(c: Buffer, _e, cb) { written += c.toString(); cb(); } });
  const out = new Output(sink);
  const t0 = performance.now();
  const tty = new TtyRenderer(out, new Tracker(), { now: () => (performance.now() - t0) / 1000, columns: () => 100, rows: () => 30 });
  tty.start();
  const until = performance.now() + 1000;
  let i = 0;
  while (performance.now() < until) {
    const drv = d(`p${i++}`);
    tty.event({ type: 'build-started', time: 0, source: 'drover', drv, out: null, system: null, log: null, pid: null, host: null });
    tty.event({ type: 'build-succeeded', time: 0, source: 'drover', drv, out: null, duration: 0 });
    if (i % 50 === 0) await sleep(1);
  }
  tty.end();
  out.flush();
  const redraws = written.split('ETA').length - 1;
  assert.ok(i > 1000, `events: ${i}`);
  assert.ok(redraws >= 5 && redraws <= 12, `redraws in one second: ${redraws}`);
});

test("tty: Nix's errors and warnings say error: and warning: once", () => {
  let written = '';
  const out = new Output(new Writable({ write(c: Buffer, _e, cb) { written += c.toString(); cb(); } }));
  const tty = new TtyRenderer(out, new Tracker(), { now: () => 0, columns: () => 100 });
  tty.event({ type: 'message', time: 0, source: 'nix-json', level: 'error', text: 'error: cannot connect to daemon' });
  tty.event({ type: 'message', time: 0, source: 'nix-json', level: 'warn', text: 'warning: Git tree is dirty' });
  tty.event({ type: 'message', time: 0, source: 'nix-json', level: 'error', text: 'disk full' });
  out.flush();
  assert.deepEqual(written.split('\n').slice(0, 3), ['error: cannot connect to daemon', 'warning: Git tree is dirty', 'error: disk full']);
});
