// Tests of the plain output as a CI log shows it: build log lines with --logs, Nix's messages.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runBin } from './testing.js';

const stamp = /^\[ *[\d.]+s\] /;
const chunk = (pid: number, text: string): string => `@ build-log ${pid} ${Buffer.byteLength(text)}\n${text}`;
const guix = (n: string): string => `/gnu/store/${n[0]!.repeat(32)}-${n}.drv`;

test('--logs: lines split across Guix chunks are printed whole, one NAME> line each', async () => {
  const input = [
    `@ build-started ${guix('hello-2.12')} - x86_64-linux /nonexistent/h.drv.gz 77\n`,
    `@ build-started ${guix('world-1')} - x86_64-linux /nonexistent/w.drv.gz 88\n`,
    chunk(77, 'configure: ok\nmake: buil'),
    chunk(88, 'wor'),
    chunk(77, 'ding hé'),
    chunk(88, 'ld says hi\n'),
    chunk(77, 'llo\nmake: done\nno newline at the end'),
    `@ build-succeeded ${guix('hello-2.12')} -\n`,
    chunk(88, 'cut off'),
  ].join('');
  const r = await runBin(['--format', 'plain', '--logs'], input);
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stdout.split('\n').map((l) => l.replace(stamp, ''));
  assert.deepEqual(lines, [
    'start   hello-2.12',
    'start   world-1',
    'hello-2.12> configure: ok',
    'world-1> world says hi',
    'hello-2.12> make: building héllo',
    'hello-2.12> make: done',
    // The build's end ends its last line.
    'hello-2.12> no newline at the end',
    'ok      hello-2.12 in 0.0s [1/2]',
    // So does the end of the input.
    'world-1> cut off',
    'FAILED  world-1 after 0.0s: interrupted [2/2, 1 failed]',
    'FAILED: 1 built, 1 failed in 0.0s',
    '',
  ]);
});

test("Nix's errors and warnings say error: and warning: once", async () => {
  const msg = (level: number, text: string): string => `@nix ${JSON.stringify({ action: 'msg', level, msg: text })}\n`;
  const r = await runBin(['--format', 'plain'], msg(0, '\x1b[31;1merror:\x1b[0m cannot connect to daemon') + msg(1, '\x1b[35;1mwarning:\x1b[0m Git tree is dirty') + msg(0, 'disk full'));
  assert.equal(r.status, 0);
  assert.deepEqual(r.stdout.split('\n').slice(0, 3).map((l) => l.replace(stamp, '')), [
    'error: cannot connect to daemon',
    'warning: Git tree is dirty',
    'error: disk full',
  ]);
});

test('a field of a trace line cannot move the cursor or clear the screen: plain and summary show it without its escapes', async () => {
  const drv = guix('evil-1');
  const input = `@ build-started ${drv} - x86_64-linux /nonexistent/e.drv.gz 7\n@ build-failed ${drv} - 1 boom\x1b[2J\x1b]0;pwned\x07\rgone\x00\n`;
  for (const format of ['plain', 'summary']) {
    const r = await runBin(['--format', format], input);
    assert.equal(r.status, 1, r.stderr);
    assert.doesNotMatch(r.stdout, /[\x00-\x08\x0b-\x1f\x7f]/, `${format}: no control character`);
    assert.match(r.stdout, /boom\?gone\?/, `${format}: the text is kept`);
  }
});
