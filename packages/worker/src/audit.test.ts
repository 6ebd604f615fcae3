// Hostile and huge inputs from the user and the hook: lines without end, timer limits,
// stdin places.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LinePrefixer, LineSplitter } from './build-log.js';
import { MAX_TIMER_SECONDS, resolveBuildOptions } from './options.js';
import { readPathArgs } from './path-args.js';

test('a line longer than the limit is cut once, and the next line comes through whole', () => {
  const got: [string, boolean][] = [];
  const s = new LineSplitter((l, cut) => got.push([l, cut]), 10);
  s.push('0123456');
  s.push('789abcdef');
  s.push('ghij\n# decline\n');
  s.push('x'.repeat(25));
  s.end();
  assert.deepEqual(got, [
    ['0123456789', true],
    ['# decline', false],
    ['xxxxxxxxxx', true],
  ]);
});

test('a line over the limit that ends in the same chunk is cut too', () => {
  const got: [string, boolean][] = [];
  const s = new LineSplitter((l, cut) => got.push([l, cut]), 4);
  s.push('abcdefg\nok\n');
  assert.deepEqual(got, [
    ['abcd', true],
    ['ok', false],
  ]);
});

test('a megabytes-long line costs time linear in its length', () => {
  let n = 0;
  const s = new LineSplitter(() => n++);
  const chunk = Buffer.alloc(64 * 1024, 0x78);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 1600; i++) s.push(chunk); // 100 MiB
  s.push('\n# accept\n');
  // Generous: the quadratic version took minutes for this.
  assert.ok(Number(process.hrtime.bigint() - t0) / 1e9 < 20);
  assert.equal(n, 2);
});

test('-L: a long line goes out in prefixed pieces, nothing lost', () => {
  let out = '';
  const p = new LinePrefixer('x> ', (s) => (out += s), 4);
  p.push('abcdefghij');
  p.push('k\nlm');
  p.end();
  assert.equal(out, 'x> abcd\nx> efgh\nx> ijk\nx> lm\n');
});

test('a cut never falls between the halves of a surrogate pair (-L loses nothing, a cut hook line is valid text)', () => {
  let out = '';
  const pre = new LinePrefixer('x> ', (t) => (out += t), 4);
  pre.push(Buffer.from('abc\u{1F600}def\n'));
  assert.equal(out, 'x> abc\nx> \u{1F600}de\nx> f\n');
  const got: [string, boolean][] = [];
  const split = new LineSplitter((l, cut) => got.push([l, cut]), 4);
  split.push('abc\u{1F600}def\nok\n');
  assert.deepEqual(got, [['abc', true], ['ok', false]]);
  assert.ok(got.every(([l]) => !/\p{Cs}/u.test(l)), 'no lone surrogate');
});

test('--timeout and --hook-timeout longer than a Node timer are refused, not fired at once', () => {
  const opts = (f: object, env: NodeJS.ProcessEnv = {}) => resolveBuildOptions(f, env, () => {});
  assert.throws(() => opts({ timeout: MAX_TIMER_SECONDS + 1 }), /--timeout must be at most 2147483 seconds/);
  assert.throws(() => opts({ hookTimeout: 3_000_000 }), /--hook-timeout must be at most/);
  assert.equal(opts({ timeout: MAX_TIMER_SECONDS }).timeout, MAX_TIMER_SECONDS);
  assert.throws(() => opts({}, { DROVER_SANDBOX: 'yes' }), /environment variable DROVER_SANDBOX must be/);
});

test('paths from stdin know their line; a character split between chunks survives', async () => {
  async function* chunks() {
    const b = Buffer.from('\n/s/a.drv\n\n  /s/é.drv  \n');
    yield b.subarray(0, 17); // inside the é
    yield b.subarray(17);
  }
  assert.deepEqual(await readPathArgs(['-'], chunks()), { paths: ['/s/a.drv', '/s/é.drv'], places: ['standard input: line 2', 'standard input: line 4'] });
  assert.deepEqual(await readPathArgs(['/s/a.drv']), { paths: ['/s/a.drv'] });
});
