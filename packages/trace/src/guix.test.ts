// Tests of Guix traces: byte-exact build-log chunks, split characters, truncation, downloads.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BuildLog, TraceEvent } from './events.js';
import { incompleteTail } from './guix.js';
import { parseTrace, TraceReader } from './index.js';
import { finalStates } from './testing.js';

const DRV = '/gnu/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-2.12.drv';
const b = (...parts: (string | Buffer | number[])[]): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.isBuffer(p) ? p : Buffer.from(p))));
const chunk = (pid: number, data: Buffer): Buffer => b(`@ build-log ${pid} ${data.length}\n`, data);
const logText = (events: TraceEvent[]): string => events.filter((e): e is BuildLog => e.type === 'build-log').map((e) => e.text).join('');

// "é" is C3 A9, "✓" is E2 9C 93: both get cut between two chunks below.
const FIRST = b('hello\n@ build-succeeded /gnu/store/fake.drv -\n@ wor', [0xc3]);
const SECOND = b([0xa9], 'ld ', [0xe2, 0x9c]);
const THIRD = b([0x93], '\n@ build-log 1 1\n');
const GUIX = b(
  `@ build-started ${DRV} - x86_64-linux /var/log/guix/drvs/aa/hello.drv.gz 4242\n`,
  'a daemon line between chunks\n',
  chunk(4242, FIRST), chunk(4242, SECOND), chunk(4242, THIRD),
  '@ download-started /gnu/store/x-foo https://ci.example/nar/foo 1000\n',
  '@ download-progress /gnu/store/x-foo https://ci.example/nar/foo 1000 500\n',
  '@ download-succeeded /gnu/store/x-foo https://ci.example/nar/foo 1000\n',
  '@ substituter-started /gnu/store/x-foo substitute\n',
  '@ substituter-succeeded /gnu/store/x-foo\n',
  `@ build-succeeded ${DRV} -\n`,
);

test('a Guix build-log chunk is read byte-exactly: split characters join, "@ " inside stays log', () => {
  const { events, passthrough, warnings } = parseTrace(GUIX);
  assert.deepEqual(warnings, []);
  assert.equal(logText(events), 'hello\n@ build-succeeded /gnu/store/fake.drv -\n@ woréld ✓\n@ build-log 1 1\n');
  // The fake "@ build-succeeded" inside the log is not an event.
  assert.deepEqual(finalStates(events), { 'hello-2.12': 'ok' });
  assert.equal(passthrough.toString(), 'a daemon line between chunks\n');
  const logs = events.filter((e): e is BuildLog => e.type === 'build-log');
  assert.ok(logs.every((e) => e.drv === DRV && e.pid === 4242 && e.source === 'guix'));
  const started = events[0]!;
  assert.ok(started.type === 'build-started');
  assert.deepEqual([started.pid, started.system, started.log, started.out, started.source], [4242, 'x86_64-linux', '/var/log/guix/drvs/aa/hello.drv.gz', null, 'guix']);
  const dl = events.filter((e) => e.type.startsWith('download-'));
  assert.deepEqual(dl.map((e) => e.type === 'download-progress' || e.type === 'download-started' || e.type === 'download-succeeded' ? [e.type, e.done, e.expected] : []),
    [['download-started', 0, 1000], ['download-progress', 500, 1000], ['download-succeeded', 1000, 1000]]);
  assert.deepEqual(events.filter((e) => e.type.startsWith('substitute-')).map((e) => e.type), ['substitute-started', 'substitute-succeeded']);
});

test('the same Guix trace gives the same events however the input is cut into reads', () => {
  const whole = parseTrace(GUIX).events;
  for (const size of [1, 2, 3, 7, 64]) {
    const events: TraceEvent[] = [];
    const pass: Buffer[] = [];
    const r = new TraceReader({ sink: { event: (e) => events.push(e), passthrough: (x, s, e) => pass.push(Buffer.from(x.subarray(s, e))) }, clock: () => 0 });
    for (let i = 0; i < GUIX.length; i += size) r.push(GUIX.subarray(i, i + size));
    r.endInput();
    r.finish();
    // Reads may split one chunk's text into pieces; the text and everything else stay the same.
    assert.equal(logText(events), logText(whole), `reads of ${size}`);
    assert.deepEqual(events.filter((e) => e.type !== 'build-log'), whole.filter((e) => e.type !== 'build-log'), `reads of ${size}`);
    assert.equal(Buffer.concat(pass).toString(), 'a daemon line between chunks\n');
  }
});

test('invalid UTF-8 in a chunk becomes U+FFFD, and the build still ends', () => {
  const { events } = parseTrace(b(`@ build-started ${DRV} - x86_64-linux /l 7\n`, chunk(7, b('bad ', [0xff, 0xfe], ' bytes\n')), `@ build-failed ${DRV} - 1 builder failed with exit code 1\n`));
  assert.equal(logText(events), 'bad \ufffd\ufffd bytes\n');
  assert.deepEqual(finalStates(events), { 'hello-2.12': 'builder' });
});

test('a chunk cut off by the end of the input keeps its bytes and is reported once', () => {
  const { events, warnings, passthrough } = parseTrace(b(`@ build-started ${DRV} - x86_64-linux /l 9\n`, '@ build-log 9 100\npartial ', [0xe2, 0x9c]));
  assert.equal(logText(events), 'partial \ufffd');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /^<input>:2: truncated @ build-log chunk: 10 of 100 bytes/);
  assert.equal(passthrough.length, 0);
  assert.deepEqual(finalStates(events), { 'hello-2.12': 'interrupted' });
});

test('a huge LEN swallows the rest of the input as log, in bounded pieces', () => {
  const body = Buffer.alloc(300 * 1024, 'x');
  const { events, warnings } = parseTrace(b('@ build-log 5 999999999999999\n', body));
  const logs = events.filter((e): e is BuildLog => e.type === 'build-log');
  assert.equal(logs.map((e) => e.text).join('').length, body.length);
  assert.ok(logs.every((e) => e.text.length <= 64 * 1024 + 4), 'pieces stay bounded');
  assert.equal(warnings.length, 1);
  // A LEN past 2^53 cannot be exact: the header is malformed and passes through.
  const over = parseTrace('@ build-log 5 99999999999999999999\nnext line\n');
  assert.equal(over.passthrough.toString(), '@ build-log 5 99999999999999999999\nnext line\n');
  assert.match(over.warnings[0]!, /<input>:1: @ build-log PID or LEN out of range/);
});

test('incompleteTail finds only unfinished characters', () => {
  assert.equal(incompleteTail(Buffer.from('abc')), 3);
  assert.equal(incompleteTail(Buffer.from([0x61, 0xe2, 0x9c])), 1);
  assert.equal(incompleteTail(Buffer.from([0x61, 0xe2, 0x9c, 0x93])), 4);
  assert.equal(incompleteTail(Buffer.from([0xf0, 0x9f, 0x98])), 0);
  assert.equal(incompleteTail(Buffer.from([0x61, 0xff])), 2);
  assert.equal(incompleteTail(Buffer.from([0x80, 0x80, 0x80, 0x80])), 4);
});

test('Guix hash mismatch and failure lines', () => {
  const { events } = parseTrace([
    `@ build-started ${DRV} - x86_64-linux /l 11`,
    '@ hash-mismatch /gnu/store/x-src sha256 0000000000000000000000000000000000000000000000000000 1rcm1yd3fbhrz6a2vzc5j6k8bp1k1m8ipaxh2z0nz0dk5hgm2rcd',
    `@ build-failed ${DRV} - 1 hash mismatch for store item '/gnu/store/x-src'`,
  ].join('\n') + '\n');
  const mm = events.find((e) => e.type === 'hash-mismatch');
  assert.ok(mm?.type === 'hash-mismatch');
  assert.deepEqual([mm.path, mm.algo, mm.expected?.length, mm.source], ['/gnu/store/x-src', 'sha256', 52, 'guix']);
  assert.deepEqual(finalStates(events), { 'hello-2.12': 'hash-mismatch' });
});
