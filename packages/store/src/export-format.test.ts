// Tests for export-format.ts: the trailer Nix writes after each NAR, and bad framing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteReader } from './byte-reader.js';
import { ENTRY_START, EXPORT_MAGIC, STREAM_END, encodeTrailer, readEntryStart, readTrailer } from './export-format.js';
import { ExportFormatError } from './errors.js';

const P = '/tmp/nixexp/store/zw5w8ck09fvyp26pjnn1brla7yyb1hb0-top';
const R = '/tmp/nixexp/store/dl4vlghqrkkyjb7azkjlgiwq3gbcqiv4-dep';
const DRV = '/tmp/nixexp/store/z01gw3hbf2xjlia100qb08dwig92rf4p-top.drv';

async function* chunks(b: Buffer, size = 3): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

test('the trailer is laid out as nix-store --export writes it', () => {
  const t = encodeTrailer({ path: P, references: [R], deriver: DRV });
  // From a real `nix-store --export` of this path (Nix 2.8): magic, path, 1 ref, deriver, 0.
  assert.equal(t.readBigUInt64LE(0), BigInt(EXPORT_MAGIC));
  assert.equal(t.subarray(0, 8).toString('latin1').slice(0, 4), 'NIXE');
  assert.equal(t.readBigUInt64LE(8), BigInt(P.length));
  assert.equal(t.subarray(16, 16 + P.length).toString(), P);
  const refsAt = 16 + Math.ceil(P.length / 8) * 8;
  assert.equal(t.readBigUInt64LE(refsAt), 1n);
  assert.equal(t.readBigUInt64LE(t.length - 8), 0n);
  assert.equal(t.length % 8, 0);
  assert.deepEqual(ENTRY_START, Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]));
  assert.deepEqual(STREAM_END, Buffer.alloc(8));
});

test('trailers round-trip, references sorted, empty deriver read as none', async () => {
  const b = Buffer.concat([encodeTrailer({ path: P, references: [R, DRV] }), STREAM_END]);
  const r = new ByteReader(chunks(b));
  assert.deepEqual(await readTrailer(r, 'x'), { path: P, references: [R, DRV].sort(), deriver: undefined });
  assert.equal(await readEntryStart(r, 'x'), false);
  assert.ok(await r.atEnd());
});

test('a legacy signature after the deriver is read and ignored, as Nix does', async () => {
  const t = encodeTrailer({ path: P, references: [] });
  const sig = Buffer.concat([Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('sig\0\0\0\0\0', 'latin1')]);
  const b = Buffer.concat([t.subarray(0, t.length - 8), sig]);
  assert.equal((await readTrailer(new ByteReader(chunks(b)), 'x')).path, P);
});

test('bad framing fails with exit 2, naming the input and byte', async () => {
  const good = encodeTrailer({ path: P, references: [R], deriver: DRV });
  const cases: [Buffer, RegExp][] = [
    [Buffer.concat([Buffer.from('NIXF\0\0\0\0'), good.subarray(8)]), /in: at byte 0: wrong export magic 0x4658494e/],
    [good.subarray(0, 30), /in: truncated at byte 30: in the store path/],
    [good.subarray(0, 4), /in: truncated at byte 4: expected the export magic/],
    [(() => { const b = Buffer.from(good); b.writeBigUInt64LE(1n << 40n, 8); return b; })(), /at byte 8: the store path of 1099511627776 bytes is longer than the limit 4096/],
    [(() => { const b = Buffer.from(good); b[16 + P.length] = 7; return b; })(), /non-zero padding after the store path/],
  ];
  for (const [b, re] of cases) {
    await assert.rejects(readTrailer(new ByteReader(chunks(b)), 'in'), (e: unknown) => e instanceof ExportFormatError && e.exitCode === 2 && re.test(e.message), re.source);
  }
  await assert.rejects(readEntryStart(new ByteReader(chunks(Buffer.from([7, 0, 0, 0, 0, 0, 0, 0]))), 'in'), /at byte 0: expected 1 \(a path follows\) or 0 \(end\), got 7/);
  await assert.rejects(readEntryStart(new ByteReader(chunks(Buffer.alloc(0))), 'in'), /in: truncated at byte 0: expected an entry marker/);
});
