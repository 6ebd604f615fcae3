// Tests for fast-argv.ts: the everyday forms read by hand, everything else left to yargs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseFast } from './fast-argv.js';
import { FIXTURES, runBin } from './testing.js';

test('the everyday forms', () => {
  assert.deepEqual(parseFast([]), { logs: false, inputs: [] });
  assert.deepEqual(parseFast(['-f', 'json', 'a.log', '-', 'b.log']), { format: 'json', logs: false, inputs: ['a.log', '-', 'b.log'] });
  assert.deepEqual(parseFast(['--format=summary', '--history', 'h.db', '--logs']), { format: 'summary', history: 'h.db', logs: true, inputs: [] });
  assert.deepEqual(parseFast(['x', '--history=h=1.db', '--format', 'plain']), { format: 'plain', history: 'h=1.db', logs: false, inputs: ['x'] });
});

test('whatever yargs must explain or refuse is left to it', () => {
  for (const args of [
    ['-h'],
    ['--help'],
    ['--format'],
    ['--format', 'xml'],
    ['--format='],
    ['-f', '--logs'],
    ['--history'],
    ['--history', '--logs'],
    ['--format', 'json', '--format', 'plain'],
    ['--logs', '--logs'],
    ['--logs=false'],
    ['--no-logs'],
    ['--frobnicate'],
    ['-fjson'],
    ['--', 'file'],
    ['-x'],
  ]) {
    assert.equal(parseFast(args), undefined, args.join(' '));
  }
});

test('through the binary, a form read by hand and one read by yargs give the same output', async () => {
  const trace = FIXTURES + 'nix-2.8-json-keep-going.trace';
  const byHand = await runBin(['-f', 'json', trace]);
  // --no-logs is not an everyday form: this one goes through yargs, meaning the same.
  const byYargs = await runBin(['--format=json', '--no-logs', trace]);
  assert.equal(byHand.status, 1);
  assert.equal(byYargs.status, byHand.status);
  const strip = (s: string) => s.replace(/"time":[0-9.]+/g, '"time":0');
  assert.equal(strip(byHand.stdout), strip(byYargs.stdout));
  assert.ok(byHand.stdout.length > 1000);
});
