// Tests for hash.ts: Nix's base32, parsing every encoding, compressHash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hash, compressHash, fromBase32, hashBytes, parseHash, toBase32 } from './hash.js';
import { HashFormatError } from './errors.js';

// Known values from Nix 2.8: nix-hash --type sha256 --flat [--base32] of a file holding "hello\n".
const HELLO_HEX = '5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03';
const HELLO_B32 = '00xyyr3fi8l6hb839bv3f7yb86yjv7xi1cgh1xnhipym4asvb4aq';

test('sha256 of hello prints in all encodings as Nix does', () => {
  const h = hashBytes('sha256', 'hello\n');
  assert.equal(h.toString('base16'), HELLO_HEX);
  assert.equal(h.toString('base32'), HELLO_B32);
  assert.equal(h.toString('base64'), 'WJG1tSLV3whtD/CxEPvZ0hu0/HFjrzTQgoai6Eb2vgM=');
  assert.equal(h.toString('sri'), 'sha256-WJG1tSLV3whtD/CxEPvZ0hu0/HFjrzTQgoai6Eb2vgM=');
  assert.equal(h.toString('base16', true), `sha256:${HELLO_HEX}`);
});

test('base32 round-trips for every size', () => {
  for (const size of [16, 20, 32, 64]) {
    const bytes = hashBytes('sha512', String(size)).bytes.subarray(0, size);
    assert.deepEqual(fromBase32(toBase32(bytes), size), Buffer.from(bytes));
  }
});

test('parseHash accepts SRI, prefixed and bare forms', () => {
  const want = Buffer.from(HELLO_HEX, 'hex');
  for (const s of [HELLO_HEX, HELLO_B32, `sha256:${HELLO_B32}`, `sha256:${HELLO_HEX}`, 'sha256-WJG1tSLV3whtD/CxEPvZ0hu0/HFjrzTQgoai6Eb2vgM=']) {
    const h = parseHash(s, s.startsWith('sha256') ? undefined : 'sha256');
    assert.deepEqual(h.bytes, want, s);
  }
  assert.equal(parseHash('WJG1tSLV3whtD/CxEPvZ0hu0/HFjrzTQgoai6Eb2vgM=', 'sha256').hex, HELLO_HEX);
});

test('parseHash rejects garbage with a message naming the hash', () => {
  assert.throws(() => parseHash('sha256:xyz'), (e: Error) => e instanceof HashFormatError && e.message.includes("'sha256:xyz'"));
  assert.throws(() => parseHash(HELLO_HEX), /does not say its algorithm/);
  assert.throws(() => parseHash(`md5:${HELLO_HEX}`), /wrong length/);
  assert.throws(() => parseHash(`sha256:${HELLO_B32.replace('1', 'e')}`), /invalid character 'e'/);
  assert.throws(() => parseHash(`sha1:${HELLO_HEX}`, 'sha256'), /is sha1, expected sha256/);
  assert.throws(() => parseHash('sha256-abc'), /SRI/);
  assert.throws(() => parseHash('blake3:abc'), /hash 'blake3:abc': unknown hash algorithm 'blake3' \(known: md5, sha1, sha256, sha512; lower case\)/);
  assert.throws(() => parseHash(`SHA256:${HELLO_HEX}`), /unknown hash algorithm 'SHA256'/);
});

test('an SRI hash whose last character has unused bits set is accepted, as Nix 2.8 accepts it', () => {
  const sri = parseHash(`sha256-${Buffer.from(HELLO_HEX, 'hex').toString('base64')}`);
  const last = sri.toString('sri').slice(-2, -1);
  const i = B64.indexOf(last);
  // sha256 leaves 2 bits of the last character unused: set them.
  const loose = `${sri.toString('sri').slice(0, -2)}${B64[i | 3]}=`;
  assert.notEqual(loose, sri.toString('sri'));
  assert.equal(parseHash(loose).toString('base16'), HELLO_HEX);
  assert.throws(() => parseHash(loose.slice(0, -1)), /SRI hash .* has the wrong length for sha256/);
});

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

test('base32 rejects a value that overflows the size', () => {
  // 52 chars encode 260 bits; a top digit above 1 does not fit in 256.
  assert.throws(() => fromBase32('z' + HELLO_B32.slice(1), 32), /does not fit/);
});

test('compressHash folds by XOR', () => {
  const h = compressHash(Buffer.from([1, 2, 3, 4, 5]), 2);
  assert.deepEqual([...h], [1 ^ 3 ^ 5, 2 ^ 4]);
  assert.ok(new Hash('md5', Buffer.alloc(16)).equals(new Hash('md5', Buffer.alloc(16))));
});

test('a bare base16 hash, decoded only when its bytes are asked for, is the same hash in every form', () => {
  const h = hashBytes('sha256', 'hello');
  const lower = parseHash(h.hex, 'sha256');
  const upper = parseHash(h.hex.toUpperCase(), 'sha256');
  for (const x of [lower, upper]) {
    assert.ok(x.equals(h));
    assert.equal(x.toString('base32'), h.toString('base32'));
    assert.equal(x.toString('sri'), h.toString('sri'));
    assert.equal(x.hex, h.hex);
  }
  // 64 characters that are not all hex: refused, not half decoded.
  assert.throws(() => parseHash(`${h.hex.slice(0, 63)}g`, 'sha256'), HashFormatError);
  assert.throws(() => new Hash('sha256', undefined, 'abcd'), HashFormatError);
});
