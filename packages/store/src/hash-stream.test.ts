// Tests for hash-stream.ts: digests equal node:crypto's however the bytes arrive, and a stream outlives its handle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import { hashBacklog, StreamSha256 } from './hash-stream.js';

const sha256 = (...parts: Buffer[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

test('pieces of one buffer, of several, with gaps between them, and none at all', async () => {
  const a = randomBytes(3 << 20);
  const b = randomBytes(100_000);

  const contiguous = new StreamSha256();
  for (let i = 0; i < a.length; i += 8191) contiguous.update(a.subarray(i, i + 8191));
  assert.equal((await contiguous.digest()).toString('hex'), sha256(a));

  // Pieces of one buffer with bytes skipped between them must not be merged across the gap.
  const gaps = new StreamSha256();
  gaps.update(a.subarray(0, 10));
  gaps.update(a.subarray(20, 30));
  gaps.update(a.subarray(30, 40));
  gaps.update(b);
  gaps.update(a.subarray(40, 50));
  assert.equal((await gaps.digest()).toString('hex'), sha256(a.subarray(0, 10), a.subarray(20, 40), b, a.subarray(40, 50)));

  // Adjacent in memory but handed over in another order: order is the caller's, not memory's.
  const backwards = new StreamSha256();
  backwards.update(a.subarray(100, 200));
  backwards.update(a.subarray(0, 100));
  assert.equal((await backwards.digest()).toString('hex'), sha256(a.subarray(100, 200), a.subarray(0, 100)));

  const empty = new StreamSha256();
  empty.update(Buffer.alloc(0));
  assert.equal((await empty.digest()).toString('hex'), sha256());
  assert.equal(hashBacklog(), 0, 'nothing is left pending once every digest is in');
});

test('many streams at once each get their own digest', async () => {
  const inputs = Array.from({ length: 200 }, (_, i) => randomBytes(1000 + i * 997));
  const digests = inputs.map((buf) => {
    const h = new StreamSha256();
    for (let i = 0; i < buf.length; i += 4096) h.update(Buffer.from(buf.subarray(i, i + 4096)));
    return h.digest();
  });
  const got = await Promise.all(digests);
  got.forEach((d, i) => assert.equal(d.toString('hex'), sha256(inputs[i]!), `stream ${i}`));
});

test('a digest asked for still arrives when its handle is collected meanwhile; asking twice or updating after is refused', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const data = randomBytes(32 << 20);
  const pending = Array.from({ length: 8 }, () => {
    const h = new StreamSha256();
    for (let i = 0; i < data.length; i += 1 << 20) h.update(Buffer.from(data.subarray(i, i + (1 << 20))));
    return h.digest();
  });
  gc();
  for (const d of await Promise.all(pending)) assert.equal(d.toString('hex'), sha256(data));

  const h = new StreamSha256();
  h.update(Buffer.from('x'));
  await h.digest();
  assert.throws(() => h.digest(), /asked for twice/);
  assert.throws(() => {
    h.update(Buffer.from('y'));
    return h.digest();
  }, /digest was asked for already/);
});

test('a stream past its backlog limit makes its reader wait until what it was given is hashed', async () => {
  const data = randomBytes(16 << 20);
  const h = new StreamSha256();
  assert.equal(h.backlogged(), undefined, 'nothing pending: no wait');
  for (let i = 0; i < data.length; i += 1 << 20) h.update(Buffer.from(data.subarray(i, i + (1 << 20))));
  assert.equal(h.backlogged(64 << 20), undefined, 'under the limit: no wait');
  const wait = h.backlogged(0);
  assert.ok(wait instanceof Promise, 'over the limit: a wait');
  await wait;
  assert.equal(hashBacklog(), 0, 'the wait ends once everything given is hashed');
  h.update(data.subarray(0, 5));
  assert.equal((await h.digest()).toString('hex'), sha256(data, data.subarray(0, 5)));
});

test("a reader waits for the backlog of earlier streams too, not only its own stream's", async () => {
  const block = randomBytes(1 << 20);
  const earlier = Array.from({ length: 256 }, () => {
    const h = new StreamSha256();
    h.update(block);
    return h.digest();
  });
  const fresh = new StreamSha256();
  const wait = fresh.backlogged(8 << 20);
  assert.ok(wait instanceof Promise, 'a new stream with nothing of its own still waits: 256 MiB are pending');
  await wait;
  assert.ok(hashBacklog() <= 4 << 20, `down to half the limit (${hashBacklog()} bytes pending)`);
  for (const d of await Promise.all(earlier)) assert.equal(d.toString('hex'), sha256(block));
});

test('a worker thread torn down while its digest is pending takes nothing else down', async () => {
  const { Worker } = await import('node:worker_threads');
  const url = new URL('./hash-stream.js', import.meta.url).href;
  const w = new Worker(
    `import { StreamSha256 } from ${JSON.stringify(url)};
     import { parentPort } from 'node:worker_threads';
     const block = Buffer.alloc(1 << 20, 7);
     const h = new StreamSha256();
     for (let i = 0; i < 256; i++) h.update(Buffer.from(block));
     h.digest();
     parentPort.postMessage('asked');`,
    { eval: true, type: 'module' } as never,
  );
  await new Promise<void>((resolve, reject) => {
    w.once('message', () => resolve());
    w.once('error', reject);
  });
  await w.terminate();
  // Still here, and hashing still works in this thread.
  const h = new StreamSha256();
  h.update(Buffer.from('after'));
  assert.equal((await h.digest()).toString('hex'), sha256(Buffer.from('after')));
});
