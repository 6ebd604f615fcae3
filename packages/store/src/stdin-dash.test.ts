// Tests that `-` survives yargs to mean stdin, through the real binary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { protectDash, restoreDash } from './stdin-dash.js';
import { STORE_BIN, run, tempStore } from './testing.js';

test('protectDash hides lone dashes before -- and the words after it, restoreDash gives them back', () => {
  const hidden = protectDash(['query', '-', '--', '-', '--json']);
  assert.equal(hidden.length, 4, 'the -- itself is gone');
  assert.notEqual(hidden[1], '-');
  assert.ok(!hidden[2]!.startsWith('-') && !hidden[3]!.startsWith('-'), 'after --, nothing looks like an option');
  const argv: Record<string, unknown> = { paths: ['a', hidden[1], hidden[2], hidden[3]], file: hidden[1], n: 1 };
  restoreDash(argv);
  assert.deepEqual(argv, { paths: ['a', '-', '-', '--json'], file: '-', n: 1 });
});

test('the words after -- are positionals, never dropped (yargs left them out)', (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  const files = ['f', '--g'].map((n) => {
    const f = path.join(s.dir, n);
    fs.writeFileSync(f, n);
    return f;
  });
  const [f, g] = files.map((x) => run(STORE_BIN, ['add', x], { env: s.env }).stdout.trim());
  const both = run(STORE_BIN, ['query', '--hash', f!, '--', g!], { env: s.env });
  assert.equal(both.code, 0, both.stderr);
  assert.equal(both.stdout.split('\n').length, 3, `a hash for each path: ${both.stdout}`);
  const only = run(STORE_BIN, ['query', '--size', '--', g!], { env: s.env });
  assert.equal(only.code, 0, only.stderr);
  // An operand that looks like an option is a file's name after --.
  const dashed = run(STORE_BIN, ['hash', '--', '--g'], { env: s.env, cwd: s.dir });
  assert.equal(dashed.code, 0, dashed.stderr);
  assert.equal(dashed.stdout, run(STORE_BIN, ['hash', files[1]!], { env: s.env }).stdout);
  const extra = run(STORE_BIN, ['dump', files[0]!, '--', 'x'], { env: s.env });
  assert.equal(extra.code, 2, 'an operand too many is refused, not ignored');
  assert.equal(extra.stderr, 'drover-store: error: Unknown argument: x\n');
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

test('derivation show - names a bad path by its line of standard input too', (t) => {
  const s = tempStore();
  t.after(s.cleanup);
  const drv = run(STORE_BIN, ['derivation', 'add'], { env: s.env, input: JSON.stringify({ name: 'd', outputs: { out: {} }, system: 's', builder: '/b' }) }).stdout.trim();
  const ghost = `${s.storeDir}/ffffffffffffffffffffffffffffffff-missing.drv`;
  for (const [bad, code, msg] of [
    ['/etc/passwd', 2, `cannot show '/etc/passwd': path '/etc/passwd' is not in the store dir ${s.storeDir}`],
    [ghost, 1, `cannot show '${ghost}': it is not valid in the store`],
  ] as const) {
    const r = run(STORE_BIN, ['derivation', 'show', '-'], { env: s.env, input: `${drv}\n\n${bad}\n` });
    assert.equal(r.code, code, r.stderr);
    assert.equal(r.stderr, `drover-store: error: standard input: line 3: ${msg}\n`);
  }
  assert.equal(run(STORE_BIN, ['derivation', 'show', '-'], { env: s.env, input: `${drv}\n` }).code, 0);
});
