import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceScanner } from './references.js';

const A = '/s/0123456789abcdfghijklmnpqrsvwxyz-a';
const B = '/s/zyxwvsrqpnmlkjihgfdcba9876543210-b';
const C = '/s/00000000000000000000000000000000-c';

test('finds hash parts anywhere, also inside longer base32 runs', () => {
  const s = new ReferenceScanner([A, B, C]);
  s.update(Buffer.from(`xx${A.slice(3, 35)}yy 000zyxwvsrqpnmlkjihgfdcba9876543210111`));
  assert.deepEqual(s.found(), [A, B].sort());
});

test('a hash split over any chunk boundary is found', () => {
  const text = Buffer.from(`some text ${B.slice(3)} more`);
  for (let cut = 1; cut < text.length; cut++) {
    const s = new ReferenceScanner([A, B]);
    s.update(text.subarray(0, cut));
    s.update(text.subarray(cut));
    assert.deepEqual(s.found(), [B], `cut at ${cut}`);
  }
  // One byte at a time.
  const s = new ReferenceScanner([B]);
  for (const byte of text) s.update(Buffer.from([byte]));
  assert.deepEqual(s.found(), [B]);
});

test('characters outside Nix base32 (e, o, u, t) break a hash', () => {
  const s = new ReferenceScanner([A]);
  s.update(Buffer.from(A.slice(3, 20) + 'e' + A.slice(21, 35)));
  assert.deepEqual(s.found(), []);
});

test('no candidates: nothing scanned, nothing found', () => {
  const s = new ReferenceScanner([]);
  s.update(Buffer.from(A));
  assert.deepEqual(s.found(), []);
});
