// Tests of the ATerm .drv format against the bytes Nix 2.8 wrote (fixtures) and against malformed input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  compareUtf8,
  decodeDerivationBytes,
  derivationName,
  isFixedOutput,
  parseDerivation,
  quoteAterm,
  serializeDerivation,
  type Derivation,
} from './derivation.js';
import { DerivationFormatError } from './errors.js';
import { loadDerivationFixtures } from './derivation-fixtures.js';

const fx = loadDerivationFixtures();
const multiPath = fx.attrs.get('multi')!;
const multiText = fx.drvs.get(multiPath)!.toString('utf8');

test('every .drv Nix wrote parses and serialises to the same bytes', () => {
  assert.ok(fx.drvs.size >= 17);
  for (const [p, bytes] of fx.drvs) {
    const drv = parseDerivation(decodeDerivationBytes(bytes, p), p);
    assert.ok(Buffer.from(serializeDerivation(drv), 'utf8').equals(bytes), p);
  }
});

test('parsed fields: outputs, inputs, fixed hashes, special characters', () => {
  const multi = parseDerivation(multiText);
  assert.deepEqual(Object.keys(multi.outputs).sort(), ['dev', 'doc', 'out']);
  assert.equal(multi.outputs.dev!.path, multi.env.dev);
  assert.equal(multi.outputs.dev!.hashAlgo, undefined);
  const chain2 = parseDerivation(fx.drvs.get(fx.attrs.get('chain2')!)!.toString());
  assert.deepEqual(chain2.inputDrvs[multiPath], ['doc', 'out']);
  const md5 = parseDerivation(fx.drvs.get(fx.attrs.get('fixedRecMd5')!)!.toString());
  assert.deepEqual({ ...md5.outputs.out, path: '' }, { path: '', hashAlgo: 'r:md5', hash: 'd41d8cd98f00b204e9800998ecf8427e' });
  assert.ok(isFixedOutput(md5));
  assert.ok(!isFixedOutput(multi));
  const special = parseDerivation(fx.drvs.get(fx.attrs.get('specialChars')!)!.toString());
  assert.equal(special.system, 'x86_64-linux with\ttab and\nnewline é');
  assert.equal(special.builder, '/bin/my "shell"\\');
  assert.equal(special.env.__proto__, 'not a prototype');
  assert.ok(Object.hasOwn(special.env, '__proto__'));
  assert.match(special.env['we"ird key\n']!, /quote " backslash \\ newline \n tab \t cr \r dollar \$ \$\{x\}.*\u0001.*\u007f.*😀 ～/su);
  const structured = parseDerivation(fx.drvs.get(fx.attrs.get('structured')!)!.toString());
  assert.equal((JSON.parse(structured.env.__json!) as { nested: { list: unknown[] } }).nested.list[4], 's"q');
});

test('quoteAterm escapes exactly what Nix escapes', () => {
  assert.equal(quoteAterm('plain $x é'), '"plain $x é"');
  assert.equal(quoteAterm('a"b\\c\nd\re\tf\u0001g'), '"a\\"b\\\\c\\nd\\re\\tf\u0001g"');
});

test('serialise sorts outputs, inputs and env as bytes (code points), not as UTF-16', () => {
  const drv: Derivation = {
    outputs: { out: { path: '/s/x-o' }, dev: { path: '/s/x-o-dev' } },
    inputDrvs: { '/s/b.drv': ['z', 'a'], '/s/a.drv': ['out'] },
    inputSrcs: ['/s/z', '/s/a'],
    system: 's',
    builder: 'b',
    args: [],
    env: { '😀': '1', '～': '2', '10': '3', '9': '4', b: '5', '\u{1F600}x': '6' },
  };
  assert.equal(
    serializeDerivation(drv),
    'Derive([("dev","/s/x-o-dev","",""),("out","/s/x-o","","")],[("/s/a.drv",["out"]),("/s/b.drv",["a","z"])],["/s/a","/s/z"],"s","b",[],' +
      '[("10","3"),("9","4"),("b","5"),("～","2"),("😀","1"),("😀x","6")])',
  );
});

test('compareUtf8 agrees with byte order of the UTF-8 encodings', () => {
  const samples = ['', 'a', 'b', 'ab', '\u007f', 'é', '\uffff', '\ue000', '\ud7ff', '😀', '～', '\u{10ffff}', 'a😀', 'a～', 'Z', '1', '10', '9'];
  for (const a of samples) {
    for (const b of samples) {
      const bytes = Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)));
      assert.equal(Math.sign(compareUtf8(a, b)), bytes, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    }
  }
});

test('masked serialisation empties output paths and the env vars named after outputs', () => {
  const drv = parseDerivation(multiText);
  const masked = serializeDerivation(drv, { maskOutputs: true });
  assert.match(masked, /^Derive\(\[\("dev","","",""\),\("doc","","",""\),\("out","","",""\)\]/);
  assert.match(masked, /\("dev",""\),\("doc",""\),\("name","multi"\),\("out",""\)/);
});

test('a field Nix writes unescaped refuses a quote or backslash instead of writing a broken file', () => {
  const drv = parseDerivation(multiText);
  assert.throws(() => serializeDerivation({ ...drv, system: 'a"b' }), /system 'a"b' contains/);
  assert.throws(() => serializeDerivation({ ...drv, inputSrcs: ['/s/a\\b'] }), /input source/);
});

test('every truncation of a .drv is an error naming the place', () => {
  for (const [p, bytes] of [...fx.drvs].slice(0, 4)) {
    const text = bytes.toString();
    for (let n = 0; n < text.length; n++) {
      assert.throws(
        () => parseDerivation(text.slice(0, n), p),
        (e: unknown) => e instanceof DerivationFormatError && e.exitCode === 2 && e.message.includes(p) && /at char \d+/.test(e.message),
        `${p} cut at ${n}`,
      );
    }
  }
});

/** [what is wrong, the ATerm, the message expected, the char offset expected]. */
const BAD: Array<[string, string, RegExp, number]> = [
  ['not a derivation', 'Derivx([', /expected 'e\(' but found 'x'/, 5],
  ['empty input', '', /expected 'Derive\(' but found the end of the input/, 0],
  ['unterminated string', 'Derive([("out","/s/x-o', /unterminated string \(the path of output 'out'\) starting here/, 15],
  ['bad escape', 'Derive([("out","/s/x","","")],[],[],"s","b\\q",[],[])', /bad escape '\\q' in the builder/, 42],
  ['escape in a raw field', 'Derive([("out","/s/x","","")],[],[],"s\\n","b",[],[])', /'\\' in the system, which Nix writes unescaped/, 38],
  ['output with 3 fields', 'Derive([("out","/s/x","")],[],[],"s","b",[],[])', /expected ',' but found '\)'/, 24],
  ['output with 5 fields', 'Derive([("out","/s/x","","","")],[],[],"s","b",[],[])', /expected '\)' but found ','/, 27],
  ['env pair with 3 strings', 'Derive([("out","/s/x","","")],[],[],"s","b",[],[("a","b","c")])', /expected '\)' but found ','/, 56],
  ['missing field', 'Derive([("out","/s/x","","")],[],[],"s",[],[])', /expected '"' to start the builder but found '\['/, 40],
  ['trailing garbage', 'Derive([("out","/s/x","","")],[],[],"s","b",[],[])\n', /trailing garbage after the derivation: '\\n'/, 50],
  ['no outputs', 'Derive([],[],[],"s","b",[],[])', /at least one output/, 8],
  ['duplicate output', 'Derive([("out","/s/x","",""),("out","/s/x","","")],[],[],"s","b",[],[])', /duplicate output 'out'/, 30],
  ['unsorted env', 'Derive([("out","/s/x","","")],[],[],"s","b",[],[("b",""),("a","")])', /environment variable 'a' is out of order/, 58],
  ['unsorted inputs', 'Derive([("out","/s/x","","")],[],["/s/b","/s/a"],"s","b",[],[])', /input source '\/s\/a' is out of order/, 41],
  ['relative input', 'Derive([("out","/s/x","","")],[("s/a.drv",["out"])],[],"s","b",[],[])', /bad path 's\/a.drv' in an input derivation path: not absolute/, 32],
  ['relative output', 'Derive([("out","x","","")],[],[],"s","b",[],[])', /bad path 'x' of output 'out'/, 15],
  ['unknown algo', 'Derive([("out","/s/x","r:sha3","abcd")],[],[],"s","b",[],[])', /unknown hash algorithm 'r:sha3'/, 22],
  ['hash of the wrong length', 'Derive([("out","/s/x","sha256","abcd")],[],[],"s","b",[],[])', /hash 'abcd' has wrong length or characters for a sha256/, 31],
  ['hash without algo', 'Derive([("out","/s/x","","abcd")],[],[],"s","b",[],[])', /has a hash but no hash algorithm/, 25],
  ['floating output', 'Derive([("out","","sha256","")],[],[],"s","b",[],[])', /floating content-addressed outputs/, 27],
  ['missing separator in a list', 'Derive([("out","/s/x","","")],[],[],"s","b",["a""b"],[])', /expected ',' or ']' in the arguments but found '"'/, 48],
];

test('malformed ATerm: each problem named with its place', () => {
  for (const [why, text, msg, at] of BAD) {
    assert.throws(
      () => parseDerivation(text, "'t.drv'"),
      (e: unknown) => {
        assert.ok(e instanceof DerivationFormatError, why);
        assert.equal(e.exitCode, 2);
        assert.match(e.message, msg, why);
        assert.match(e.message, new RegExp(`^malformed derivation in 't.drv' at char ${at}: `), `${why}: ${e.message}`);
        return true;
      },
      why,
    );
  }
});

test('fixed-output hashes in base32 or base64 are accepted and written in base16, as Nix does', () => {
  const hex = 'd41d8cd98f00b204e9800998ecf8427e';
  for (const h of [hex, '3y8bwfr609h3lh9ch0izcqq7fl', '1B2M2Y8AsgTpgAmY7PhCfg==']) {
    const drv = parseDerivation(`Derive([("out","/s/x","r:md5","${h}")],[],[],"s","b",[],[])`);
    assert.equal(drv.outputs.out!.hash, hex);
  }
});

test('invalid UTF-8 is named with its byte offset', () => {
  assert.throws(() => decodeDerivationBytes(Buffer.from([0x44, 0x65, 0xc3, 0x28]), "'x.drv'"), /'x.drv' is not valid UTF-8 at byte 2/);
  assert.throws(() => decodeDerivationBytes(Buffer.from([0x44, 0xf0, 0x9f, 0x98]), "'x.drv'"), /at byte 1/);
});

test('derivationName strips the hash and .drv', () => {
  assert.equal(derivationName(multiPath), 'multi');
  assert.equal(derivationName('/s/abc-hello-1.0.drv'), 'hello-1.0');
  assert.throws(() => derivationName('/s/abc-hello'), DerivationFormatError);
  assert.throws(() => derivationName('/s/abc-.drv'), DerivationFormatError);
});
