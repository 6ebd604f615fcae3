// Tests of the byte reader: bad input, long lines, read boundaries, and JSON fast paths against JSON.stringify.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { TraceEvent } from './events.js';
import { parseTrace, TraceReader } from './index.js';
import { Output } from './output.js';
import { JsonRenderer } from './render-json.js';
import { Writable } from 'node:stream';
import { fixture } from './testing.js';
import { writeGuixLog, writeNixJsonLog } from './bench-data.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('garbage passes through byte for byte, without events or warnings', () => {
  const garbage = Buffer.concat([randomBytes(4096).map((x) => (x === 0x40 ? 0x41 : x)), Buffer.from('\nplain line\r\n\xff\xfe not utf-8\n', 'latin1')]);
  const { events, passthrough, warnings } = parseTrace(garbage);
  assert.deepEqual(events, []);
  assert.deepEqual(warnings, []);
  assert.ok(passthrough.equals(garbage));
});

test('invalid JSON after @nix is reported once with its line and passed through', () => {
  const input = 'before\n@nix {"action":"start","id":1,\n@nix [1,2]\n@nix {"id":3}\n@nix {"action":"msg","level":3,"msg":"fine"}\n';
  const { events, passthrough, warnings } = parseTrace(input);
  assert.equal(warnings.length, 3);
  assert.match(warnings[0]!, /^<input>:2: invalid JSON after @nix/);
  assert.match(warnings[1]!, /^<input>:3: @nix line is not a JSON object/);
  assert.match(warnings[2]!, /^<input>:4: @nix object without "action"/);
  assert.equal(passthrough.toString(), 'before\n@nix {"action":"start","id":1,\n@nix [1,2]\n@nix {"id":3}\n');
  assert.deepEqual(events.map((e) => e.type === 'message' && e.text), ['fine']);
});

test('invalid UTF-8 inside a trace line is replaced, not fatal', () => {
  const input = Buffer.concat([Buffer.from('@nix {"action":"msg","level":1,"msg":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n@ build-started /s/x-\xff.drv /s/o sys /l\n', 'latin1')]);
  const { events, warnings } = parseTrace(input);
  assert.deepEqual(warnings, []);
  assert.ok(events[0]!.type === 'message' && events[0]!.text === 'caf\ufffd');
  assert.ok(events[1]!.type === 'build-started' && events[1]!.drv === '/s/x-\ufffd.drv');
});

test('after many malformed lines only a count is printed', () => {
  const warnings: string[] = [];
  const r = new TraceReader({ sink: { event: () => {}, passthrough: () => {} }, warn: (w) => warnings.push(w), maxWarnings: 3 });
  r.beginInput('trace.log');
  r.push(Buffer.from('@nix nope\n'.repeat(10)));
  r.endInput();
  r.finish();
  assert.deepEqual(warnings.slice(0, 3).map((w) => w.slice(0, 12)), ['trace.log:1:', 'trace.log:2:', 'trace.log:3:']);
  assert.deepEqual(warnings.slice(3), ['7 more malformed lines not shown (10 in all)']);
});

test('an over-long line passes through unparsed and memory stays bounded', () => {
  const pass: Buffer[] = [];
  const warnings: string[] = [];
  const r = new TraceReader({ sink: { event: () => assert.fail('no event'), passthrough: (b, s, e) => pass.push(Buffer.from(b.subarray(s, e))) }, warn: (w) => warnings.push(w), maxLine: 1000 });
  const long = Buffer.concat([Buffer.from('@nix {"action":"msg","msg":"'), Buffer.alloc(5000, 'x'), Buffer.from('"}\n')]);
  for (let i = 0; i < long.length; i += 300) r.push(long.subarray(i, i + 300));
  r.push(Buffer.from('after\n'));
  r.endInput();
  assert.equal(Buffer.concat(pass).toString(), long.toString() + 'after\n');
  assert.equal(warnings.length, 1);
});

test('a last line without newline is still read', () => {
  const { events } = parseTrace('@nix {"action":"msg","level":3,"msg":"end"}');
  assert.ok(events[0]!.type === 'message' && events[0]!.text === 'end');
});

/** JSON output through the byte fast paths, with the input cut into reads of `size`. */
function jsonOf(input: Buffer, size: number, fast: boolean): Buffer {
  const parts: Buffer[] = [];
  const sinkStream = new Writable({ write(c: Buffer, _e, cb) { parts.push(Buffer.from(c)); cb(); } });
  const out = new Output(sinkStream);
  const json = new JsonRenderer(out, out);
  const sink = fast ? json : { event: (e: TraceEvent) => json.event(e), passthrough: (b: Buffer, s: number, e: number) => json.passthrough(b, s, e) };
  const r = new TraceReader({ sink, clock: () => 0 });
  for (let i = 0; i < input.length; i += size) r.push(input.subarray(i, i + size));
  r.endInput();
  r.finish();
  out.flush();
  return Buffer.concat(parts);
}

test('the byte fast paths write exactly what JSON.stringify of the events writes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-trace-test-'));
  try {
    await writeNixJsonLog(join(dir, 'nix.log'), 400_000, 7);
    await writeGuixLog(join(dir, 'guix.log'), 400_000, 8);
    for (const input of [readFileSync(join(dir, 'nix.log')), readFileSync(join(dir, 'guix.log')), fixture('nix-2.8-json-keep-going.trace')]) {
      const slow = jsonOf(input, 1 << 20, false);
      for (const line of slow.toString().split('\n').slice(0, -1)) JSON.parse(line);
      assert.ok(jsonOf(input, 1 << 20, true).equals(slow));
      // Reads that cut lines and chunks anywhere change nothing but how Guix text is split.
      const cut = jsonOf(input, 4099, true).toString().split('\n').slice(0, -1).map((l) => JSON.parse(l) as TraceEvent);
      const whole = slow.toString().split('\n').slice(0, -1).map((l) => JSON.parse(l) as TraceEvent);
      const text = (evs: TraceEvent[]): string => evs.map((e) => (e.type === 'build-log' ? e.text : '')).join('');
      assert.equal(text(cut), text(whole));
      assert.deepEqual(cut.filter((e) => e.type !== 'build-log'), whole.filter((e) => e.type !== 'build-log'));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
