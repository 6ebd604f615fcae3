// Tests that `-` survives yargs to mean stdin, through the real binary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { protectDash, restoreDash } from './stdin-dash.js';
import { STORE_BIN, run, tempStore } from './testing.js';

test('protectDash hides only lone dashes before --, restoreDash gives them back', () => {
  const hidden = protectDash(['query', '-', '--', '-']);
  assert.notEqual(hidden[1], '-');
  assert.equal(hidden[3], '-');
  const argv: Record<string, unknown> = { paths: ['a', hidden[1]], file: hidden[1], n: 1 };
  restoreDash(argv);
  assert.deepEqual(argv, { paths: ['a', '-'], file: '-', n: 1 });
});

test('query --valid - reads the paths from stdin', (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  const f = path.join(s.dir, 'f');
  fs.writeFileSync(f, 'x');
  const p = run(STORE_BIN, ['add', f], { env: s.env }).stdout.trim();
  const ok = run(STORE_BIN, ['query', '--hash', '-'], { env: s.env, input: `${p}\n` });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^sha256:[0-9a-z]{52}\n$/);
  const bad = run(STORE_BIN, ['query', '--valid', '-'], { env: s.env, input: `${p}\n${s.storeDir}/ffffffffffffffffffffffffffffffff-missing\n` });
  assert.equal(bad.code, 1);
});

test('a bad path read with - is named by its line of standard input, in every command that reads them', (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  const f = path.join(s.dir, 'f');
  fs.writeFileSync(f, 'x');
  const p = run(STORE_BIN, ['add', f], { env: s.env }).stdout.trim();
  const ghost = `${s.storeDir}/ffffffffffffffffffffffffffffffff-missing`;
  for (const args of [['query', '--hash'], ['query', '--requisites'], ['export'], ['dump-db'], ['failed', '--clear']]) {
    const outside = run(STORE_BIN, [...args, '-'], { env: s.env, input: `${p}\n\n/etc/passwd\n` });
    assert.equal(outside.code, 2, `${args.join(' ')}: ${outside.stderr}`);
    assert.equal(outside.stderr, `drover-store: error: standard input: line 3: path '/etc/passwd' is not in the store dir ${s.storeDir}\n`, args.join(' '));
    if (args[0] === 'failed') continue;
    const invalid = run(STORE_BIN, [...args, '-'], { env: s.env, input: `\n${p}\n${ghost}\n` });
    assert.equal(invalid.code, 1, `${args.join(' ')}: ${invalid.stderr}`);
    assert.equal(invalid.stderr, `drover-store: error: standard input: line 3: path '${ghost}' is not valid\n`, args.join(' '));
  }
});
