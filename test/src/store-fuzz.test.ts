// Regressions found by mutation-fuzzing drover-store's inputs (export streams, NARs, registration
// text, derivations, path lists): each a hostile input that once hung, changed the store on
// failure, or was refused without naming its place.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { ENTRY_START, STREAM_END, encodeTrailer } from '@drover/store';
import { STORE_BIN, narString, tempStore } from '@drover/store/testing';
import { drover, exportStream, fakeStorePath, makeChain, narOfFile, snapshot } from './validity-helpers.js';

/** An export stream entry whose NAR is a bare symlink. */
function symlinkEntry(p: string, target: string): Buffer {
  const nar = Buffer.concat(['nix-archive-1', '(', 'type', 'symlink', 'target', target, ')'].map((t) => narString(t)));
  return Buffer.concat([ENTRY_START, nar, encodeTrailer({ path: p, references: [] })]);
}

test('import: a .drv entry that is a symlink (to /dev/zero) is refused, naming its entry, and never read', (t) => {
  const s = tempStore('drover-fuzz-drvlink-');
  t.after(s.cleanup);
  const ok = makeChain(s.storeDir, 'ok', 1);
  const drv = fakeStorePath(s.storeDir, 'zero', 'zero.drv');
  const stream = Buffer.concat([exportStream(ok).subarray(0, -8), symlinkEntry(drv, '/dev/zero'), STREAM_END]);
  // A read of /dev/zero never ends: bounded here, so a regression fails instead of hanging.
  const r = spawnSync(process.execPath, [STORE_BIN, 'import'], { input: stream, env: { ...process.env, ...s.env }, timeout: 60_000, killSignal: 'SIGKILL' });
  assert.equal(r.signal, null, 'import ended by itself');
  assert.equal(r.status, 2, r.stderr.toString());
  assert.match(r.stderr.toString(), new RegExp(`^drover-store: error: standard input: entry 2 \\(trailer at byte \\d+\\): cannot read derivation '${drv}': it is a symbolic link, not a regular file\\n$`));
  assert.deepEqual(snapshot(s.storeDir), [], 'nothing left in the store dir');
  assert.equal(drover(s.env, ['query', '--valid', ok[0]!.path]).code, 1, 'nothing registered');
});

test('import: a bad .drv after the first commit chunk (4096 paths) leaves the store as it was', (t) => {
  const s = tempStore('drover-fuzz-chunk-');
  t.after(s.cleanup);
  // Independent single files (no references), then a .drv that is not a derivation.
  const paths = Array.from({ length: 4100 }, (_, i) => ({ path: fakeStorePath(s.storeDir, `c${i}`, `c${i}`), contents: Buffer.from(String(i)), references: [] }));
  const bad = fakeStorePath(s.storeDir, 'bad', 'bad.drv');
  const stream = Buffer.concat([exportStream(paths).subarray(0, -8), ENTRY_START, narOfFile(Buffer.from('not a derivation')), encodeTrailer({ path: bad, references: [] }), STREAM_END]);
  const r = drover(s.env, ['import'], stream);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`^drover-store: error: standard input: entry 4101 \\(trailer at byte \\d+\\): malformed derivation in '${bad}' at char 0: expected 'Derive\\(' but found 'n'\\n$`));
  assert.deepEqual(snapshot(s.storeDir), [], 'no path left in the store dir');
  assert.equal(drover(s.env, ['query', '--valid', paths[0]!.path]).code, 1, 'the first chunk is not registered');
});

test('an error quoting a megabyte of input reaches stderr whole, ending in its newline', (t) => {
  const s = tempStore('drover-fuzz-long-');
  t.after(s.cleanup);
  const long = `${s.storeDir}/${'x'.repeat(1 << 20)}`;
  const r = drover(s.env, ['register-validity'], `${long}\n\n0\n`);
  assert.equal(r.code, 2);
  // More than a pipe holds: an exit that does not wait for stderr to drain cut it at 64-128 KiB.
  assert.ok(r.stderr.length > 1 << 20, `stderr of ${r.stderr.length} bytes`);
  assert.match(r.stderr, /^drover-store: error: standard input: line 1: path: path '[^\n]*' does not start with a 32-character Nix base32 hash and '-'\n$/);
});

test('restore to an empty path is a usage error, not the native writer\'s', (t) => {
  const s = tempStore('drover-fuzz-restore-');
  t.after(s.cleanup);
  const r = drover(s.env, ['restore', ''], narOfFile(Buffer.from('x')));
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stderr, 'drover-store: error: restore needs a path to write the archive to, not an empty string\n');
});

test('yargs\' own refusals are one error line too', (t) => {
  const s = tempStore('drover-fuzz-yargs-');
  t.after(s.cleanup);
  const r = drover(s.env, ['convert-hash', '--to', 'bogus', 'sha256:0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^drover-store: error: Invalid values: Argument: to, Given: "bogus", Choices: [^\n]*\n$/);
});

test('derivation add: line breaks and tabs quoted from the input do not break the error line', (t) => {
  const s = tempStore('drover-fuzz-drv-');
  t.after(s.cleanup);
  // A .drv whose environment is out of order, at a name holding a line break.
  const aterm = 'Derive([("out","","","")],[],[],"s","/b",[],[("b",""),("a\\nb","")])';
  const unsorted = drover(s.env, ['derivation', 'add', '--name', 'd'], aterm);
  assert.equal(unsorted.code, 2);
  assert.equal(unsorted.stderr, "drover-store: error: malformed derivation in stdin at char 55: environment variable 'a\\x0ab' is out of order (Nix writes them sorted)\n");
  // The one fixed output must be called out: named in the error with its tab shown escaped.
  const fixed = JSON.stringify({ name: 'f', outputs: { 'o\tut': { hashAlgo: 'sha256', hash: '0'.repeat(64) } }, system: 's', builder: '/b' });
  const badName = drover(s.env, ['derivation', 'add'], fixed);
  assert.equal(badName.code, 2);
  assert.match(badName.stderr, /^drover-store: error: [^\n]*'o\\x09ut'[^\n]*\n$/);
  assert.deepEqual(snapshot(s.storeDir), [], 'nothing written');
});

test('import and register-validity refuse a .drv whose output variable names another path, as Nix does', (t) => {
  const s = tempStore('drover-fuzz-drvenv-');
  t.after(s.cleanup);
  const drv = drover(s.env, ['derivation', 'add'], JSON.stringify({ name: 'd', outputs: { out: {} }, system: 's', builder: '/b' })).stdout.trim();
  const out = drover(s.env, ['query', '--outputs', drv]).stdout.trim();
  const stream = drover(s.env, ['export', drv]).stdoutBytes;
  // The second mention of the output path in the .drv is its `out` variable: one character off.
  const at = stream.lastIndexOf(Buffer.from(`"${out}"`)) + 1 + s.storeDir.length + 1;
  const lying = Buffer.from(stream);
  lying[at] = lying[at] === 0x30 ? 0x31 : 0x30;
  const other = { ...s.env, DROVER_STATE_DIR: `${s.dir}/state2` };
  const r = drover(other, ['import'], lying);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`^drover-store: error: standard input: entry 1 \\(trailer at byte \\d+\\): derivation '${drv}' has incorrect environment variable 'out': '[^']*', should be '${out}'\\n$`));
  assert.equal(drover(other, ['query', '--valid', drv]).code, 1, 'not registered');
  // The same .drv on disk, registered by register-validity in a third state dir.
  const text = fs.readFileSync(drv, 'utf8');
  const k = text.lastIndexOf(out) + s.storeDir.length + 1;
  fs.chmodSync(drv, 0o644);
  fs.writeFileSync(drv, text.slice(0, k) + (text[k] === '0' ? '1' : '0') + text.slice(k + 1));
  const third = { ...s.env, DROVER_STATE_DIR: `${s.dir}/state3` };
  const reg = drover(third, ['register-validity'], `${drv}\n\n0\n`);
  assert.equal(reg.code, 2, reg.stderr);
  assert.match(reg.stderr, new RegExp(`^drover-store: error: standard input: line 1: derivation '${drv}' has incorrect environment variable 'out'`));
  assert.equal(drover(third, ['query', '--valid', drv]).code, 1, 'not registered');
});
