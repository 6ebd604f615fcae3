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
