// Tests of `nix show-derivation` JSON: written byte-for-byte as Nix 2.8 printed it, read back, and malformed input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { derivationName, parseDerivation, serializeDerivation, type Derivation } from './derivation.js';
import { derivationsToJson, nixJsonString, parseDerivationInput, parseDerivationsJson } from './derivation-json.js';
import { DerivationFormatError } from './errors.js';
import { loadDerivationFixtures } from './derivation-fixtures.js';

const fx = loadDerivationFixtures();
const parsed = new Map<string, Derivation>([...fx.drvs].map(([p, b]) => [p, parseDerivation(b.toString('utf8'), p)]));

test('the JSON of every fixture .drv is byte-for-byte what nix show-derivation printed', () => {
  const mine = Buffer.from(derivationsToJson(parsed), 'utf8');
  assert.ok(mine.equals(fx.showJson), `differs at byte ${[...mine].findIndex((b, i) => b !== fx.showJson[i])}`);
});

test('one derivation alone has the same shape, and an empty set prints {}', () => {
  const p = fx.attrs.get('chain1')!;
  const one = derivationsToJson([[p, parsed.get(p)!]]);
  assert.ok(one.startsWith(`{\n  ${JSON.stringify(p)}: {\n    "outputs": {\n      "out": {\n        "path": `));
  assert.ok(one.endsWith('\n    }\n  }\n}\n'));
  assert.equal(derivationsToJson([]), '{}\n');
});

test('Nix escapes in JSON: only " \\ \\n \\r \\t by name, other controls as \\u00XX, DEL and UTF-8 raw', () => {
  assert.equal(nixJsonString('a"b\\c\nd\re\tf'), '"a\\"b\\\\c\\nd\\re\\tf"');
  assert.equal(nixJsonString('\u0000\u0001\b\f\u001b\u001f\u007f é 😀 \u2028'), '"\\u0000\\u0001\\u0008\\u000c\\u001b\\u001f\u007f é 😀 \u2028"');
});

test('reading show-derivation JSON back gives the same derivations, keys and names', () => {
  const entries = parseDerivationsJson(fx.showJson.toString('utf8'), 'show.json');
  assert.equal(entries.length, parsed.size);
  for (const e of entries) {
    assert.deepEqual(e.drv, parsed.get(e.key!), e.key);
    assert.equal(serializeDerivation(e.drv), fx.drvs.get(e.key!)!.toString('utf8'));
    assert.equal(e.name, derivationName(e.key!));
  }
});

test('fixed-output hashes in JSON may be in any encoding, SRI too, and come out base16', () => {
  const hex = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
  for (const hash of [hex, 'sha256:' + hex, '0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73', 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=']) {
    const [e] = parseDerivationsJson(JSON.stringify({ outputs: { out: { hashAlgo: 'r:sha256', hash } }, system: 's', builder: 'b', env: { name: 'x' } }), 'in');
    assert.deepEqual(e!.drv.outputs.out, { path: '', hashAlgo: 'r:sha256', hash: hex }, hash);
    assert.equal(e!.name, 'x');
  }
});

test('a single object may leave out the empty parts; its name comes from name, env.name, __json or --name', () => {
  const minimal = { outputs: { out: {} }, system: 's', builder: 'b' };
  const [e] = parseDerivationInput(Buffer.from(JSON.stringify({ ...minimal, name: 'n' })), 'in');
  assert.deepEqual(plain(e!.drv), { outputs: { out: { path: '' } }, inputDrvs: {}, inputSrcs: [], system: 's', builder: 'b', args: [], env: {} });
  assert.equal(e!.name, 'n');
  assert.equal(parseDerivationInput(Buffer.from(JSON.stringify({ ...minimal, env: { name: 'e' } })), 'in')[0]!.name, 'e');
  assert.equal(parseDerivationInput(Buffer.from(JSON.stringify({ ...minimal, env: { __json: '{"name":"j"}' } })), 'in')[0]!.name, 'j');
  assert.equal(parseDerivationInput(Buffer.from(JSON.stringify(minimal)), 'in', 'flag')[0]!.name, 'flag');
  assert.throws(() => parseDerivationInput(Buffer.from(JSON.stringify(minimal)), 'in'), /in: the derivation has no name/);
});

test('ATerm input is recognised by its Derive( start', () => {
  const p = fx.attrs.get('multi')!;
  const [e] = parseDerivationInput(fx.drvs.get(p)!, "'multi.drv'");
  assert.deepEqual(e!.drv, parsed.get(p));
  assert.equal(e!.name, 'multi');
  assert.equal(e!.key, undefined);
});

test('sets in JSON are sorted and deduplicated; __proto__ and integer-like env names are plain keys', () => {
  const text = '{"outputs":{"out":{}},"system":"s","builder":"b","inputSrcs":["/s/b","/s/a","/s/b"],"inputDrvs":{"/s/x.drv":["z","a","z"]},' +
    '"env":{"__proto__":"p","10":"x","9":"y","name":"n"}}';
  const [e] = parseDerivationsJson(text, 'in');
  assert.deepEqual(e!.drv.inputSrcs, ['/s/a', '/s/b']);
  assert.deepEqual(e!.drv.inputDrvs['/s/x.drv'], ['a', 'z']);
  assert.ok(Object.hasOwn(e!.drv.env, '__proto__'));
  assert.match(serializeDerivation(e!.drv), /\[\("10","x"\),\("9","y"\),\("__proto__","p"\),\("name","n"\)\]\)$/);
});

/** [what is wrong, the JSON, the message expected]. */
/** Null-prototype records as plain objects, to compare with literals. */
function plain<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

const BAD: Array<[string, string, RegExp]> = [
  ['not JSON', '{"outputs": {', /^in: malformed JSON at line 1, column 14 \(char 13\)/],
  ['syntax error on line 2', '{\n  "a": ]\n}', /^in: malformed JSON at line 2, column 8 \(char 9\): unexpected ']'/],
  ['unterminated string', '{"outputs": {"out', /^in: malformed JSON at line 1, column 14 \(char 13\): unterminated string starting here/],
  ['trailing garbage', '{"outputs":{"out":{}},"system":"s","builder":"b"} x', /^in: malformed JSON at line 1, column 51 \(char 50\): trailing garbage: 'x'/],
  ['empty input', '', /^in: malformed JSON at line 1, column 1 \(char 0\)/],
  ['not an object', '[1]', /^in: expected an object, got a list/],
  ['no derivations', '{}', /^in: no derivations/],
  ['missing field', '{"outputs":{"out":{}},"system":"s"}', /^in: missing field 'builder'/],
  ['unknown field', '{"outputs":{"out":{}},"system":"s","builder":"b","envv":{}}', /^in: unknown field 'envv'/],
  ['wrong type', '{"outputs":{"out":{}},"system":"s","builder":"b","args":"x"}', /^in: args: expected a list of strings, got the string "x"/],
  ['number in a list', '{"outputs":{"out":{}},"system":"s","builder":"b","args":["a",1]}', /^in: args\[1\]: expected a string, got number 1/],
  ['no outputs', '{"outputs":{},"system":"s","builder":"b"}', /^in: outputs: a derivation needs at least one output/],
  ['unknown output field', '{"outputs":{"out":{"pth":""}},"system":"s","builder":"b"}', /^in: outputs.out: unknown field 'pth'/],
  ['hash without algo', '{"outputs":{"out":{"hash":"abc"}},"system":"s","builder":"b"}', /^in: outputs.out.hash: a hash needs a hashAlgo/],
  ['unknown algo', '{"outputs":{"out":{"hashAlgo":"sha3","hash":"abc"}},"system":"s","builder":"b"}', /^in: outputs.out: fixed output: unknown hash algorithm 'sha3'/],
  ['hash of the wrong length', '{"outputs":{"out":{"hashAlgo":"sha1","hash":"abcd"}},"system":"s","builder":"b"}', /^in: outputs.out: fixed output: hash 'abcd' has wrong length or characters for a sha1 hash/],
  ['SRI of another algo', '{"outputs":{"out":{"hashAlgo":"sha1","hash":"sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}},"system":"s","builder":"b"}', /is sha256, expected sha1/],
  ['floating', '{"outputs":{"out":{"hashAlgo":"sha256"}},"system":"s","builder":"b"}', /floating content-addressed outputs/],
  ['lone surrogate', '{"outputs":{"out":{}},"system":"s","builder":"b","env":{"x":"\\ud800"}}', /^in: env.x: string contains an unpaired UTF-16 surrogate/],
  ['NUL in an env value', '{"outputs":{"out":{}},"system":"s","builder":"b","env":{"x":"a\\u0000b"}}', /^in: env.x: string contains a NUL character$/],
  ['key that is no .drv path', '{"/s/abc-x":{"outputs":{"out":{}},"system":"s","builder":"b"}}', /^in: '\/s\/abc-x' is not the path of a .drv file/],
  ['name field disagreeing with the key', '{"/s/abc-x.drv":{"name":"y","outputs":{"out":{}},"system":"s","builder":"b"}}', /^in: derivation '\/s\/abc-x.drv': name: 'y' differs from the name 'x'/],
  ['bad member of a map', '{"/s/abc-x.drv":{"outputs":{"out":{}},"system":"s","builder":3}}', /^in: derivation '\/s\/abc-x.drv': builder: expected a string, got number 3/],
  // Deeper than the call stack: the scanner that finds the place must not overflow it.
  ['unclosed nesting deeper than the stack', '['.repeat(100000), /^in: malformed JSON at line 1, column 100001 \(char 100000\): unexpected the end of the input$/],
  ['an error deep inside nesting', `${'{"a":'.repeat(50000)}x`, /^in: malformed JSON at line 1, column 250001 \(char 250000\): unexpected 'x'$/],
];

test('malformed JSON: each problem named with its place', () => {
  for (const [why, text, msg] of BAD) {
    assert.throws(
      () => parseDerivationsJson(text, 'in'),
      (e: unknown) => e instanceof DerivationFormatError && e.exitCode === 2 && msg.test(e.message),
      why,
    );
  }
});

test('invalid UTF-8 in the input is named with its byte offset', () => {
  assert.throws(() => parseDerivationInput(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]), 'in'), /in is not valid UTF-8 at byte 2/);
});
