// Tests of the request/reply lines of the build hook protocol, good and hostile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { parseRequestLine, parsePathsLine, replyLine, LineReader, HookProtocolError } from './hook-requests.js';

const S = '/s/store';
const DRV = `${S}/0123456789abcdfghijklmnpqrsvwxyz-hello.drv`;

test('request line with and without features', () => {
  assert.deepEqual(parseRequestLine(`1 x86_64-linux ${DRV} `, S), { amWilling: true, system: 'x86_64-linux', drvPath: DRV, requiredFeatures: [] });
  assert.deepEqual(parseRequestLine(`0 aarch64-linux ${DRV} kvm,big-parallel,kvm`, S), {
    amWilling: false,
    system: 'aarch64-linux',
    drvPath: DRV,
    requiredFeatures: ['kvm', 'big-parallel'],
  });
  // A scheduler that trims the trailing space is still understood.
  assert.equal(parseRequestLine(`1 x86_64-linux ${DRV}`, S).requiredFeatures.length, 0);
});

const BAD: [string, RegExp][] = [
  ['', /has 1 space-separated fields/],
  ['garbage', /has 1 space-separated fields/],
  [`2 x86_64-linux ${DRV} `, /AM_WILLING '2' is not 0 or 1/],
  [`1 x/y ${DRV} `, /SYSTEM 'x\/y'/],
  [`1 x86_64-linux /elsewhere/0123456789abcdfghijklmnpqrsvwxyz-a.drv `, /DRV_PATH '\/elsewhere.*is not a store path in \/s\/store/],
  [`1 x86_64-linux ${S}/eeee-a.drv `, /is not a store path/],
  [`1 x86_64-linux ${S}/0123456789abcdfghijklmnpqrsvwxyz-a `, /does not end in .drv/],
  [`1 x86_64-linux ${DRV} a;b`, /feature 'a;b'/],
  [`1 x86_64-linux ${DRV} a b`, /has 5 space-separated fields/],
  [`1 x86_64-linux ${S}/0123456789abcdfghijklmnpqrsvwxyz-../../etc.drv `, /is not a store path/],
];
for (const [line, re] of BAD) {
  test(`bad request line refused: ${JSON.stringify(line.slice(0, 40))}`, () => {
    assert.throws(
      () => parseRequestLine(line, S),
      (e: unknown) => e instanceof HookProtocolError && e.exitCode === 2 && re.test(e.message),
    );
  });
}

test('paths lines: space separated, duplicates folded, bad paths named', () => {
  assert.deepEqual(parsePathsLine(`${DRV} ${DRV}  `, S, 'inputs'), [DRV]);
  assert.deepEqual(parsePathsLine('', S, 'inputs'), []);
  assert.throws(() => parsePathsLine(`${DRV} /etc/passwd`, S, 'inputs line'), /inputs line '\/etc\/passwd' is not a store path/);
});

test('replies are "# WORD" lines', () => {
  assert.equal(replyLine('accept'), '# accept\n');
  assert.equal(replyLine('postpone'), '# postpone\n');
});

test('LineReader: split chunks, last line without newline, end of input', async () => {
  const r = new LineReader(Readable.from([Buffer.from('a b\nc'), Buffer.from('d\n\ne')]));
  assert.equal(await r.next(), 'a b');
  assert.equal(await r.next(), 'cd');
  assert.equal(await r.next(), '');
  assert.equal(await r.next(), 'e');
  assert.equal(await r.next(), undefined);
  assert.equal(await r.next(), undefined);
});
