// Tests for registration.ts: the register-validity / dump-db text, both layouts, and bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatRegistration, parseRegistrations, RegistrationFormatError } from './registration.js';
import { parseHash } from './hash.js';

const A = '/nix/store/0qsdvbfg2ah6mf7jnm6rp327nvpfz9gh-a';
const B = '/nix/store/dl4vlghqrkkyjb7azkjlgiwq3gbcqiv4-b';
const D = '/nix/store/z01gw3hbf2xjlia100qb08dwig92rf4p-b.drv';
const HEX = 'ecb6c3c3b5ad697c989147f794ae3f5cf9d27f6e0358773280180f00828a6b42';

test('parses the layout without hashes: path, deriver, count, references', () => {
  const r = parseRegistrations(`${B}\n${D}\n0\n${A}\n\n1\n${B}\n`, { hashGiven: false });
  assert.deepEqual(
    // Fields the layout does not give are undefined.
    r.map((e) => Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined))),
    [
      { path: B, deriver: D, references: [], line: 1 },
      { path: A, references: [B], line: 4 },
    ],
  );
});

test('parses the --hash-given layout and prints it back as nix-store --dump-db does', () => {
  const text = `${A}\n${HEX}\n120\n${D}\n1\n${B}\n`;
  const [e] = parseRegistrations(text, { hashGiven: true });
  assert.equal(e!.narHash!.hex, HEX);
  assert.equal(e!.narSize, 120);
  assert.equal(formatRegistration({ path: A, narHash: e!.narHash!, narSize: 120, deriver: D, references: [B] }), text);
  // Prefixed and base32 hashes are accepted as Nix's Hash::parseAny accepts them.
  const b32 = parseHash(`sha256:${HEX}`).toString('base32', true);
  assert.equal(parseRegistrations(`${A}\n${b32}\n120\n\n0\n`, { hashGiven: true })[0]!.narHash!.hex, HEX);
});

test('an input without a final newline, or with trailing blank lines, is accepted', () => {
  assert.equal(parseRegistrations(`${A}\n\n0`, { hashGiven: false }).length, 1);
  assert.equal(parseRegistrations(`${A}\n\n0\n\n\n`, { hashGiven: false }).length, 1);
  assert.deepEqual(parseRegistrations('', { hashGiven: false }), []);
});

test('the largest NAR size is read exactly; leading zeros are only zeros', () => {
  assert.equal(parseRegistrations(`${A}\n${HEX}\n9007199254740991\n\n0\n`, { hashGiven: true })[0]!.narSize, Number.MAX_SAFE_INTEGER);
  assert.equal(parseRegistrations(`${A}\n${HEX}\n${'0'.repeat(20)}120\n\n0\n`, { hashGiven: true })[0]!.narSize, 120);
});

test('malformed input names the input, the line and the problem', () => {
  const bad: [string, boolean, RegExp][] = [
    [`${A}\n\nx\n`, false, /line 3: expected the number of references \(a decimal number\), got 'x'/],
    [`${A}\n\n2\n${B}\n`, false, /line 5: unexpected end of input, expected reference 2 of 2/],
    [`${A}\n`, false, /line 2: unexpected end of input, expected the deriver/],
    [`relative\n\n0\n`, false, /line 1: expected a store path \(an absolute store path\), got 'relative'/],
    [`${A}\nnot-a-deriver\n0\n`, false, /line 2: expected the deriver/],
    [`${A}\nzzzz\n12\n\n0\n`, true, /line 2: bad NAR hash/],
    [`${A}\n${HEX}\n-5\n\n0\n`, true, /line 3: expected the NAR size/],
    [`${A}\n\n99999999\n`, false, /line 3: the number of references 99999999 is larger than the limit/],
    // Past 2^53 the digits are quoted as typed, not as a rounded number.
    [`${A}\n${HEX}\n9999999999999999\n\n0\n`, true, /line 3: the NAR size 9999999999999999 is larger than the limit 9007199254740991$/],
    [`${A}\n${HEX}\n9007199254740992\n\n0\n`, true, /line 3: the NAR size 9007199254740992 is larger than the limit 9007199254740991$/],
    [`${A}\n${HEX}\n${'9'.repeat(30)}\n\n0\n`, true, new RegExp(`line 3: the NAR size ${'9'.repeat(30)} is larger than the limit 9007199254740991$`)],
    [`${A}\r\n\n0\n`, false, /line 1: carriage return/],
    [`${A}\n\n1x\r\n`, false, /line 3: carriage return in the number of references/],
    [`${A}\n${HEX}\n12\r\n\n0\n`, true, /line 3: carriage return in the NAR size/],
    [`\n${A}\n\n0\n`, false, /line 1: expected a store path/],
  ];
  for (const [text, hashGiven, re] of bad) {
    assert.throws(
      () => parseRegistrations(text, { hashGiven, what: 'standard input' }),
      (e: unknown) => e instanceof RegistrationFormatError && e.exitCode === 2 && /^standard input: /.test(e.message) && re.test(e.message),
      `${JSON.stringify(text)} should fail with ${re}`,
    );
  }
});
