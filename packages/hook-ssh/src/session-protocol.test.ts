// Tests of the session wire format: frames in any chunking, logs interleaved, hostile frames and messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { DATA_FRAME, FrameReader, FrameWriter, SessionProtocolError, encodeFrame, parseHeader, parseHello, parseMissing, parseNarHashes } from './session-protocol.js';

async function* chunks(bufs: Buffer[], size: number): AsyncGenerator<Buffer> {
  const all = Buffer.concat(bufs);
  for (let i = 0; i < all.length; i += size) yield all.subarray(i, i + size);
}

const payload = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));

for (const size of [1, 3, 7, 4096, 1 << 20]) {
  test(`hello, message, data with log frames between, in chunks of ${size} bytes`, async () => {
    const stream = [
      ...encodeFrame('H', JSON.stringify({ v: 2, storeDir: '/s' })),
      ...encodeFrame('L', 'log one\n'),
      ...encodeFrame('M', '{"missing":[]}'),
      ...encodeFrame('D', payload.subarray(0, 3000)),
      ...encodeFrame('L', 'log two\n'),
      ...encodeFrame('D', payload.subarray(3000)),
      ...encodeFrame('E'),
    ];
    const r = new FrameReader(chunks(stream, size), 'the remote');
    const logs: string[] = [];
    r.onLog = (b) => logs.push(b.toString());
    assert.deepEqual(parseHello(await r.expect('H', 'first'), 'the remote'), { storeDir: '/s', version: '', checksNarHashes: false });
    assert.deepEqual(await r.expect('M', 'second'), { missing: [] });
    const got: Buffer[] = [];
    for await (const c of r.data()) got.push(c);
    assert.deepEqual(Buffer.concat(got), payload);
    assert.deepEqual(logs, ['log one\n', 'log two\n']);
    assert.equal(await r.next(), undefined);
    assert.equal(r.received, Buffer.concat(stream).length);
  });
}

test('FrameWriter frames what it sends and counts data bytes', async () => {
  const sink = new PassThrough();
  const w = new FrameWriter(sink);
  await w.message({ a: 1 });
  await w.send('D', Buffer.from('abc'));
  await w.send('E');
  sink.end();
  const r = new FrameReader(sink, 't');
  assert.deepEqual(await r.expect('M', 'x'), { a: 1 });
  const d: Buffer[] = [];
  for await (const c of r.data()) d.push(c);
  assert.equal(Buffer.concat(d).toString(), 'abc');
  assert.equal(w.dataBytes, 3);
});

test('export data: small pieces are gathered into frames, big pieces go out as they are', async () => {
  const sink = new PassThrough();
  const w = new FrameWriter(sink);
  const small = Array.from({ length: 3000 }, (_, i) => Buffer.alloc(100, i % 256));
  const big = Buffer.alloc(DATA_FRAME + 5, 9);
  const sent: Buffer[] = [];
  const write = sink.write.bind(sink);
  sink.write = ((b: Buffer) => (sent.push(b), write(b))) as typeof sink.write;
  const r = new FrameReader(sink, 't');
  const got: Buffer[] = [];
  const reading = (async () => {
    for await (const c of r.data()) got.push(c);
  })();
  for (const c of small.slice(0, 10)) await w.sendData(c);
  await w.sendData(big);
  for (const c of small.slice(10)) await w.sendData(c);
  await w.endData();
  sink.end();
  await reading;
  assert.deepEqual(Buffer.concat(got), Buffer.concat([...small.slice(0, 10), big, ...small.slice(10)]));
  // 10 small pieces, the big one by itself, then 2990 small ones in frames of >= DATA_FRAME (but the last).
  assert.deepEqual(got.map((c) => c.length), [1000, big.length, ...Array(Math.floor(299_000 / 262_200)).fill(262_200), 299_000 % 262_200]);
  assert.ok(sent.includes(big), 'the big piece is written as it is, not copied');
  assert.equal(w.dataBytes, 1000 + big.length + 299_000);
});

test('garbage, truncation and wrong frames are refused, naming what came', async () => {
  const bad = async (bufs: Buffer[], fn: (r: FrameReader) => Promise<unknown>, re: RegExp) => {
    await assert.rejects(fn(new FrameReader(chunks(bufs, 5), 'ssh://m (serve)')), (e: unknown) => e instanceof SessionProtocolError && re.test(e.message), String(re));
  };
  const drain = async (r: FrameReader) => {
    for await (const _ of r.data()) void _;
  };
  await bad([Buffer.from('Welcome to the machine!\n')], (r) => r.next(), /ssh:\/\/m \(serve\): 'Welcome to the machine!\?' is not a session frame \(is something else printing on the remote's stdout\?\)/);
  await bad([encodeFrame('M', 'x'.repeat(10))[0]!], (r) => r.next(), /the stream ends inside a M frame of 10 bytes/);
  await bad([Buffer.from('M')], (r) => r.next(), /the stream ends inside a frame/);
  await bad([Buffer.from([0x44, 0xff, 0xff, 0xff, 0x7f])], (r) => r.next(), /a frame of \d+ bytes is larger than/);
  await bad(encodeFrame('M', 'not json'), (r) => r.expect('M', 'at its start'), /'not json' at its start is not JSON/);
  await bad(encodeFrame('M', '[1]'), (r) => r.expect('M', 'at its start'), /is not a JSON object/);
  await bad(encodeFrame('D', 'x'), (r) => r.expect('M', 'during the build'), /expected a M frame during the build, got D/);
  await bad([], (r) => r.expect('H', 'at its start'), /the session ended at its start/);
  await bad(encodeFrame('D', 'abc'), drain, /the session ended inside an export stream/);
  await bad(encodeFrame('M', '{}'), drain, /expected a D or E frame inside an export stream, got M/);
});

test("an {error} from the remote inside an export stream is its own words, not a protocol fault (no back-off)", async () => {
  const r = new FrameReader(chunks([...encodeFrame('D', 'abc'), ...encodeFrame('M', JSON.stringify({ error: "path '/s/x' is not valid" }))], 3), 'ssh://m (serve)');
  await assert.rejects(
    (async () => {
      for await (const _ of r.data()) void _;
    })(),
    (e: unknown) => e instanceof Error && !(e instanceof SessionProtocolError) && e.message === "ssh://m (serve): path '/s/x' is not valid",
  );
});

test('headers, hellos and missing lists from a hostile peer are refused', () => {
  const good = { storeDir: '/s', drv: '/s/a-x.drv', outputs: ['/s/b-x'], inputs: ['/s/a-x.drv'], maxSilentTime: 0 };
  assert.equal(parseHeader(good).drv, '/s/a-x.drv');
  for (const [patch, re] of [
    [{ storeDir: 'rel' }, /storeDir is not an absolute path/],
    [{ drv: '/etc/passwd' }, /drv is not a .drv store path/],
    [{ drv: '/s/../etc/x.drv' }, /drv is not a .drv store path/],
    [{ outputs: ['/s/ok', '/elsewhere/x'] }, /outputs is not a list of store paths in \/s/],
    [{ inputs: 'all' }, /inputs is not a list/],
    [{ maxSilentTime: -1 }, /maxSilentTime/],
  ] as const) {
    assert.throws(() => parseHeader({ ...good, ...patch }), re);
  }
  assert.throws(() => parseHello({ v: 1, storeDir: '/s' }, 'r'), /r: speaks session protocol 1, this hook speaks 2/);
  assert.throws(() => parseHello({ v: 2 }, 'r'), /names no store dir/);
  assert.equal(parseHello({ v: 2, storeDir: '/s', checksNarHashes: true }, 'r').checksNarHashes, true);
  assert.equal(parseHeader({ ...good, narHashes: true }).narHashes, true);
  assert.equal(parseHeader(good).narHashes, false);
  assert.throws(() => parseHeader({ ...good, narHashes: 'yes' }), /narHashes is not true or false/);
  const h = 'sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s';
  assert.equal(parseNarHashes({ narHashes: { '/s/a': h } }, ['/s/a'], 'r').get('/s/a')!.toString('base32', true), h);
  for (const [v, re] of [
    [{ narHashes: [h] }, /r: narHashes: not an object/],
    [{ narHashes: {} }, /no hash for '\/s\/a'/],
    [{ narHashes: { '/s/a': h, '/s/b': h } }, /'\/s\/b' is not one of the missing paths/],
    [{ narHashes: { '/s/a': 42 } }, /the hash of '\/s\/a' is not a string/],
    [{ narHashes: { '/s/a': 'sha256:zzz' } }, /the hash of '\/s\/a': /],
    [{ narHashes: { '/s/a': 'sha1:' + '0'.repeat(40) } }, /is sha1, expected sha256/],
  ] as const) {
    assert.throws(() => parseNarHashes(v as Record<string, unknown>, ['/s/a'], 'r'), re);
  }
  const asked = new Set(['/s/a']);
  assert.deepEqual(parseMissing({ missing: ['/s/a'] }, asked, 'r'), ['/s/a']);
  assert.throws(() => parseMissing({ missing: ['/s/zzz'] }, asked, 'r'), /says it lacks '\/s\/zzz', which the hook never asked about/);
  assert.throws(() => parseMissing({ error: 'disk on fire' }, asked, 'r'), /r: disk on fire/);
  assert.throws(() => parseMissing({ missing: 'everything' }, asked, 'r'), /'missing' is not a list of paths/);
});

test("a hello that is not JSON, null, or of another protocol version is the remote's fault (exit 1), named", () => {
  for (const [payload, re] of [
    ['{xyz}', /^ssh:\/\/m \(serve\): its hello '\{xyz\}' is not JSON$/],
    ['null', /^ssh:\/\/m \(serve\): its hello null is not a JSON object$/],
    ['[2]', /its hello \[2\] is not a JSON object/],
    ['{"v":1,"storeDir":"/s"}', /^ssh:\/\/m \(serve\): speaks session protocol 1, this hook speaks 2; install the same drover version on both machines$/],
    ['{"v":3,"storeDir":"/s","version":"drover-hook-ssh 9.0.0"}', /speaks session protocol 3, this hook speaks 2 \(the remote is drover-hook-ssh 9\.0\.0\)/],
    ['{"storeDir":"/s"}', /speaks session protocol none, this hook speaks 2/],
  ] as const) {
    assert.throws(
      () => parseHello(Buffer.from(payload), 'ssh://m (serve)'),
      (e: unknown) => e instanceof SessionProtocolError && e.exitCode === 1 && re.test(e.message),
      payload,
    );
  }
  assert.deepEqual(parseHello(Buffer.from('{"v":2,"storeDir":"/s","version":"drover-hook-ssh 0.1.0"}'), 'r'), { storeDir: '/s', version: 'drover-hook-ssh 0.1.0', checksNarHashes: false });
});
