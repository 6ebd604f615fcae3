// Tests of the drover trace line grammar: what drover-build writes and what readers parse.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buildFailedLine, buildRemoteLine, buildStartedLine, buildSucceededLine, hookFailedLine,
  formatTraceLine, parseTraceLine, type DroverTraceLine,
} from './trace-lines.js';

const DRV = '/s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-1.0.drv';
const OUT = '/s/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-hello-1.0';

test('the five drover trace lines format exactly as the contract writes them', () => {
  assert.equal(buildStartedLine(DRV, OUT, 'x86_64-linux', '/var/log/x.drv'), `@ build-started ${DRV} ${OUT} x86_64-linux /var/log/x.drv\n`);
  assert.equal(buildRemoteLine(DRV, 'builder1'), `@ build-remote ${DRV} builder1\n`);
  assert.equal(buildSucceededLine(DRV, OUT), `@ build-succeeded ${DRV} ${OUT}\n`);
  assert.equal(buildFailedLine(DRV, OUT, 100, 'builder for x failed with exit code 1'), `@ build-failed ${DRV} ${OUT} 100 builder for x failed with exit code 1\n`);
  assert.equal(hookFailedLine(DRV, OUT, 1, 'ssh: connect refused'), `@ hook-failed ${DRV} ${OUT} 1 ssh: connect refused\n`);
});

test('every formatted line parses back to the same fields', () => {
  const lines: DroverTraceLine[] = [
    { verb: 'build-started', drv: DRV, out: OUT, system: 'aarch64-linux', log: '/l' },
    { verb: 'build-remote', drv: DRV, host: 'ssh://u@h:22' },
    { verb: 'build-succeeded', drv: DRV, out: OUT },
    { verb: 'build-failed', drv: DRV, out: OUT, status: 1, message: 'two  spaces  kept' },
    { verb: 'hook-failed', drv: DRV, out: OUT, status: 255, message: '' },
  ];
  for (const l of lines) assert.deepEqual(parseTraceLine(formatTraceLine(l).slice(0, -1)), l);
});

test('a message with newlines stays one line; a field never splits or vanishes', () => {
  assert.equal(buildFailedLine(DRV, OUT, 3, 'a\nb\r\nc'), `@ build-failed ${DRV} ${OUT} 3 a b c\n`);
  // Whitespace inside a field would shift every later field for the reader; nothing would drop one.
  assert.equal(buildStartedLine(DRV, OUT, 'x86 64', '/l'), `@ build-started ${DRV} ${OUT} x86_64 /l\n`);
  assert.equal(buildRemoteLine(DRV, ''), `@ build-remote ${DRV} -\n`);
  assert.equal(buildFailedLine(DRV, OUT, 1.5, 'm'), `@ build-failed ${DRV} ${OUT} 1 m\n`);
  assert.deepEqual(parseTraceLine(buildStartedLine(DRV, OUT, 'x86 64', 'a b').slice(0, -1)), { verb: 'build-started', drv: DRV, out: OUT, system: 'x86_64', log: 'a_b' });
});

test('lines of other dialects are not drover lines', () => {
  assert.equal(parseTraceLine(`@ build-started ${DRV} - x86_64-linux /l`), null);
  assert.equal(parseTraceLine(`@ build-started ${DRV} - x86_64-linux /l 1234`), null);
  assert.equal(parseTraceLine(`@ build-succeeded ${DRV} -`), null);
  assert.equal(parseTraceLine(`@ build-failed ${DRV} - timeout`), null);
  assert.equal(parseTraceLine('@nix {"action":"msg"}'), null);
  assert.equal(parseTraceLine('building foo'), null);
});
