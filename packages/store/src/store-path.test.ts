// Tests for store-path.ts: names, parsing, and the path hashes Nix computes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkStoreName, makeFixedOutputPath, makeTextPath, parseStorePath, storeNameProblem, toStorePath } from './store-path.js';
import { hashBytes, parseHash } from './hash.js';

test('names follow Nix rules', () => {
  assert.equal(storeNameProblem('hello-1.0_x+y?=z'), undefined);
  assert.match(storeNameProblem('.hidden')!, /starts with/);
  assert.match(storeNameProblem('a b')!, /character ' '/);
  assert.match(storeNameProblem('')!, /empty/);
  assert.match(storeNameProblem('x'.repeat(212))!, /longer than 211/);
  assert.equal(storeNameProblem('x'.repeat(211)), undefined);
  assert.throws(() => checkStoreName('ünï'), /character 'ü'/);
});

test('parseStorePath splits and validates', () => {
  const p = '/nix/store/ffffffffffffffffffffffffffffffff-x';
  assert.deepEqual(parseStorePath('/nix/store', p), { hashPart: 'ffffffffffffffffffffffffffffffff', name: 'x' });
  assert.throws(() => parseStorePath('/nix/store', '/other/ffffffffffffffffffffffffffffffff-x'), /not in the store dir/);
  assert.throws(() => parseStorePath('/nix/store', '/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x'), /32-character Nix base32/);
  assert.throws(() => parseStorePath('/nix/store', `${p}/bin`), /inside a store path/);
  assert.throws(() => parseStorePath('/nix/store', '/nix/store/ffffffffffffffffffffffffffffffff-..'), /starts with '.'/);
  assert.equal(toStorePath('/nix/store', `${p}/bin/sh`), p);
});

test('text and fixed-output paths match Nix', () => {
  // Values printed by Nix 2.8 with NIX_STORE_DIR=/tmp/nixt/store: builtins.toFile "hello" "hello\n",
  // nix-store --add-fixed sha256 hello, nix-store --add-fixed --recursive sha256 hello.
  const dir = '/tmp/nixt/store';
  assert.equal(makeTextPath(dir, 'hello', 'hello\n', []), `${dir}/dbshnw5cy61pzlrgknpmcpaa6ip45y5l-hello`);
  const flat = hashBytes('sha256', 'hello\n');
  assert.equal(makeFixedOutputPath(dir, 'hello', false, flat), `${dir}/4r1n4797cfc63h3fqxl3m0bm3nvymvcj-hello`);
  // The NAR of a regular file "hello\n": what nix-store --add-fixed --recursive hashes.
  const nar = Buffer.concat([
    ...['nix-archive-1', '(', 'type', 'regular', 'contents', 'hello\n', ')'].map((t) => {
      const b = Buffer.alloc(8 + Math.ceil(t.length / 8) * 8);
      b.writeBigUInt64LE(BigInt(t.length));
      b.write(t, 8);
      return b;
    }),
  ]);
  assert.equal(makeFixedOutputPath(dir, 'hello', true, parseHash('sha256:' + hashBytes('sha256', nar).hex)), `${dir}/iapmh8hzrrj7yg5k4qimk9dx7gwkahav-hello`);
});

test('control characters in names and paths are shown escaped, never raw', () => {
  const p = '/nix/store/ffffffffffffffffffffffffffffffff-a\rb';
  assert.throws(
    () => parseStorePath('/nix/store', p),
    (e: unknown) => {
      const m = (e as Error).message;
      return m === "store path '/nix/store/ffffffffffffffffffffffffffffffff-a\\x0db': name 'a\\x0db' contains the character '\\x0d' (allowed: A-Z a-z 0-9 + - . _ ? =)" && !/[\x00-\x1f]/.test(m);
    },
  );
  assert.throws(() => checkStoreName('x\x1b[2Jy'), (e: unknown) => (e as Error).message === "store path name 'x\\x1b[2Jy' contains the character '\\x1b' (allowed: A-Z a-z 0-9 + - . _ ? =)");
  assert.throws(() => parseStorePath('/nix/store', '/elsewhere/\x07'), (e: unknown) => (e as Error).message === "path '/elsewhere/\\x07' is not in the store dir /nix/store");
});
