// Tests of the drover trace line grammar that drover-build writes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  formatBuildFailed, formatBuildRemote, formatBuildStarted, formatBuildSucceeded, formatHookFailed,
  formatTraceLine, parseTraceLine, TraceFormatError, type DroverTraceLine,
} from './trace-format.js';

const DRV = '/s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-1.0.drv';
const OUT = '/s/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-hello-1.0';

test('the five drover trace lines format exactly as the contract writes them', () => {
  assert.equal(formatBuildStarted(DRV, OUT, 'x86_64-linux', '/var/log/x.drv'), `@ build-started ${DRV} ${OUT} x86_64-linux /var/log/x.drv\n`);
  assert.equal(formatBuildRemote(DRV, 'builder1'), `@ build-remote ${DRV} builder1\n`);
  assert.equal(formatBuildSucceeded(DRV, OUT), `@ build-succeeded ${DRV} ${OUT}\n`);
  assert.equal(formatBuildFailed(DRV, OUT, 100, 'builder for x failed with exit code 1'), `@ build-failed ${DRV} ${OUT} 100 builder for x failed with exit code 1\n`);
  assert.equal(formatHookFailed(DRV, OUT, 1, 'ssh: connect refused'), `@ hook-failed ${DRV} ${OUT} 1 ssh: connect refused\n`);
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

test('a message with newlines stays one line; fields with spaces are refused', () => {
  assert.equal(formatBuildFailed(DRV, OUT, 1, 'a\nb\r\nc'), `@ build-failed ${DRV} ${OUT} 1 a b c\n`);
  assert.throws(() => formatBuildStarted(DRV, OUT, 'x86 64', '/l'), TraceFormatError);
  assert.throws(() => formatBuildRemote(DRV, ''), TraceFormatError);
  assert.throws(() => formatBuildFailed(DRV, OUT, 1.5, 'm'), TraceFormatError);
});

test('lines of other dialects are not drover lines', () => {
  assert.equal(parseTraceLine(`@ build-started ${DRV} - x86_64-linux /l`), null);
  assert.equal(parseTraceLine(`@ build-started ${DRV} - x86_64-linux /l 1234`), null);
  assert.equal(parseTraceLine(`@ build-succeeded ${DRV} -`), null);
  assert.equal(parseTraceLine(`@ build-failed ${DRV} - timeout`), null);
  assert.equal(parseTraceLine('@nix {"action":"msg"}'), null);
  assert.equal(parseTraceLine('building foo'), null);
});
