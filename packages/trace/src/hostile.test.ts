// Regressions found by mutation fuzzing of real traces: inputs that stopped the reader, made it
// hang, gave JSON that breaks its own contract, or reached the terminal through the human outputs.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import type { TraceEvent } from './events.js';
import { parseTrace } from './index.js';
import { Output } from './output.js';
import { TtyRenderer } from './render-tty.js';
import { finalStates, runBin } from './testing.js';
import { Tracker } from './tracker.js';

const d = (n: string): string => `/nix/store/ffffffffffffffffffffffffffffffff-${n}.drv`;
const o = (n: string): string => `/nix/store/gggggggggggggggggggggggggggggggg-${n}`;
const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);
const started = (drv: string): string => `@nix {"action":"start","fields":["${drv}"],"id":7,"level":3,"parent":0,"text":"building","type":105}\n`;

test('deeply nested JSON in a @nix line is one bad line, not the end of the reading', () => {
  const input =
    started(d('deep-1')) +
    // Progress fields nested 200000 deep (joining them recursed until the stack overflowed), an id so nested.
    `@nix {"action":"result","fields":[${nested(200000)},1,0,0],"id":7,"type":105}\n` +
    `@nix {"action":"stop","id":${nested(200000)}}\n` +
    `@nix {"action":"result","fields":["still read"],"id":7,"type":101}\n` +
    '@nix {"action":"stop","id":7}\n';
  const { events, warnings } = parseTrace(input);
  assert.deepEqual(warnings, ['<input>:3: @nix stop with an "id" that is not an integer']);
  assert.ok(events.some((e) => e.type === 'build-log' && e.text === 'still read\n'));
  assert.deepEqual(finalStates(events), { 'deep-1': 'ok' });
});

test('the CLI reads on past deeply nested JSON: no "cannot read", exit status of the trace', async () => {
  const input = started(d('deep-2')) + `@nix {"action":"result","fields":[${nested(200000)}],"id":7,"type":105}\n` + '@nix {"action":"stop","id":7}\n';
  for (const format of ['json', 'plain', 'summary']) {
    const r = await runBin(['--format', format], input, {}, 30_000);
    assert.equal(r.status, 0, `${format}: ${r.stderr.slice(0, 300)}`);
    assert.doesNotMatch(r.stderr, /cannot read|Maximum call stack/, format);
  }
});

test('a long failure message full of "dependency" is read in linear time', async () => {
  // /dependenc(y|ies).*fail/ backtracked from every "dependency" to the end: hours for this 2 MB line.
  // In a child with a time limit, so that a regression fails the test instead of hanging it.
  const message = 'dependency '.repeat(200_000);
  const input = `@ build-failed ${d('dep-1')} ${o('dep-1')} 1 ${message}\n@ build-failed ${d('dep-2')} ${o('dep-2')} 1 a dependency failed\n`;
  const r = await runBin(['--format', 'json'], input, {}, 20_000);
  assert.equal(r.status, 1, `killed after 20 s? ${r.stderr.slice(0, 200)}`);
  const causes = r.stdout.trimEnd().split('\n').map((l) => (JSON.parse(l) as { cause: string }).cause);
  assert.deepEqual(causes, ['builder', 'dependency']);
  // What the regular expression meant still holds: "fail" after "dependenc(y|ies)" on the same line.
  const cause = (m: string): string => finalStates(parseTrace(`@ build-failed ${d('x-1')} ${o('x-1')} 1 ${m}\n`).events)['x-1']!;
  assert.equal(cause('3 dependencies failed'), 'dependency');
  assert.equal(cause('failed: no dependency'), 'builder');
  assert.equal(cause('dependency\rfailed'), 'builder');
});

test('activity ids in JSON are decimal strings: ids that are no integer are reported, repeated keys read as JSON.parse does', () => {
  const input = [
    `@nix {"action":"start","fields":["${d('str-1')}"],"id":"12","level":3,"type":105}`,
    `@nix {"action":"start","fields":["${d('arr-1')}"],"id":[[1]],"level":3,"type":105}`,
    `@nix {"action":"start","fields":["${d('obj-1')}"],"id":{"a":1},"level":3,"type":105}`,
    `@nix {"action":"result","fields":["x"],"id":true,"type":101}`,
    // A nested object holds an "id" too; JSON.parse keeps the last of a repeated key.
    `@nix {"action":"start","fields":[{"id":1}],"id":5,"id":18446744073709551615,"level":3,"text":"building '${d('big-1')}'","type":105}`,
    `@nix {"action":"result","fields":["\\u001b[2J/nix/store/x"],"id":18446744073709551615,"type":102}`,
  ].join('\n') + '\n';
  const { events, warnings } = parseTrace(input);
  assert.deepEqual(warnings, [
    '<input>:1: @nix start with an "id" that is not an integer',
    '<input>:2: @nix start with an "id" that is not an integer',
    '<input>:3: @nix start with an "id" that is not an integer',
    '<input>:4: @nix result with an "id" that is not an integer',
  ]);
  for (const e of events) if (e.activity !== undefined) assert.match(e.activity, /^\d+$/);
  const start = events.find((e) => e.type === 'build-started');
  assert.deepEqual([start?.type === 'build-started' && start.drv, start?.activity], [d('big-1'), '18446744073709551615']);
  // A message's text has no escape sequences, whichever result it comes from.
  const msg = events.find((e): e is Extract<TraceEvent, { type: 'message' }> => e.type === 'message');
  assert.equal(msg?.text, 'untrusted path /nix/store/x');
});

test('numbers past 2^53 in @ lines are not made up: status, PID and sizes are the trace\'s or null', () => {
  const { events, warnings } = parseTrace([
    `@ build-failed ${d('big-st')} ${o('big-st')} 123456789012345678901234567890 boom`,
    `@ build-started ${d('big-pid')} - x86_64-linux /l ${'9'.repeat(400)}`,
    `@ download-progress /gnu/store/x-1 https://u ${'9'.repeat(400)} 5`,
  ].join('\n') + '\n');
  const failed = events.find((e) => e.type === 'build-failed');
  assert.ok(failed?.type === 'build-failed');
  assert.deepEqual([failed.status, failed.message], [null, '123456789012345678901234567890 boom']);
  assert.deepEqual(warnings, ['<input>:2: @ build-started with unexpected fields']);
  const dl = events.find((e) => e.type === 'download-progress');
  assert.ok(dl?.type === 'download-progress');
  assert.deepEqual([dl.done, dl.expected], [5, null]);
});

test('plain: a failed build\'s log tail and --logs lines reach the terminal without escapes or control characters', async () => {
  const drv = `/gnu/store/${'e'.repeat(32)}-evil-1.drv`;
  const log = 'ok line\n\x1b[2J\x1b]0;pwned\x07cleared\r\nbell\x07 and \x1b[1;31mred\x1b[0m\n';
  const input = `@ build-started ${drv} - x86_64-linux /nonexistent/e.drv.gz 7\n@ build-log 7 ${Buffer.byteLength(log)}\n${log}@ build-failed ${drv} - 1 boom\n`;
  const plain = await runBin(['--format', 'plain'], input);
  assert.equal(plain.status, 1, plain.stderr);
  assert.doesNotMatch(plain.stdout, /[\x00-\x08\x0b-\x1f\x7f]/);
  assert.match(plain.stdout, /^ {10}\| cleared$/m);
  assert.match(plain.stdout, /^ {10}\| bell\? and red$/m);
  const logs = await runBin(['--format', 'plain', '--logs'], input);
  assert.equal(logs.status, 1, logs.stderr);
  assert.doesNotMatch(logs.stdout, /[\x00-\x08\x0b-\x1f\x7f]/);
  assert.match(logs.stdout, /^evil-1> ok line\nevil-1> cleared\nevil-1> bell\? and red$/m);
});

test('tty: a status line with tabs or wide characters is no wider than the screen', () => {
  const out = new Output(new Writable({ write(_c: Buffer, _e, cb) { cb(); } }));
  const tracker = new Tracker();
  const tty = new TtyRenderer(out, tracker, { now: () => 1, columns: () => 40, rows: () => 20 });
  const start = (n: string): TraceEvent => ({ type: 'build-started', time: 0, source: 'nix-json', drv: d(n), out: null, system: null, log: null, pid: null, host: null });
  tty.event(start('tabs'));
  tty.event({ type: 'build-phase', time: 0, source: 'nix-json', drv: d('tabs'), phase: 'build\t\t\t\t\t\tPhase' });
  tty.event(start('wide'));
  tty.event({ type: 'build-phase', time: 0, source: 'nix-json', drv: d('wide'), phase: '构建阶段'.repeat(6) + '🎉🎉' });
  // A terminal's columns: a tab moves to the next multiple of eight, CJK and emoji take two.
  const width = (line: string): number => {
    let w = 0;
    for (const ch of line) w = ch === '\t' ? (Math.floor(w / 8) + 1) * 8 : w + (ch.codePointAt(0)! >= 0x1100 ? 2 : 1);
    return w;
  };
  const lines = tty.status(1);
  assert.equal(lines.length, 3, lines.join('\n'));
  for (const line of lines) assert.ok(width(line) <= 39, `${width(line)} columns: ${JSON.stringify(line)}`);
  assert.equal(lines[2], '  > wide  local      0:01  构建阶段构~');
});
