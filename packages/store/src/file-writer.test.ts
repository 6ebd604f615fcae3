// Tests of ParallelFileWriter: every byte lands in order however the chunks arrive, and errors reach the caller.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ParallelFileWriter } from './file-writer.js';

// A roomy memory bound lets chunks pile up behind a write in flight (one writev); a tiny one
// makes every write wait for the flush before it.
for (const maxBytes of [1 << 20, 1]) {
  test(`chunks arriving while writes are in flight land in order, to the last byte (memory bound ${maxBytes})`, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-writer-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const w = new ParallelFileWriter({ maxBytes, maxFiles: 4, canonical: true });
    const want: Buffer[] = [];
    for (let f = 0; f < 12; f++) {
      const data = randomBytes(50_000 + f * 7_919);
      want.push(data);
      const job = await w.begin(path.join(dir, `f${f}`), 0o644, f % 2 ? 0o555 : 0o444);
      // Pieces of every size, sometimes with a pause so that a flush ends between two of them.
      for (let at = 0, k = 0; at < data.length; k++) {
        const n = 1 + ((k * 2_654_435_761) % 9_000);
        const r = job.write(data.subarray(at, at + n));
        if (r) await r;
        at += n;
        if (k % 7 === 0) await new Promise((res) => setImmediate(res));
      }
      await job.end();
    }
    await w.drain();
    for (let f = 0; f < 12; f++) {
      const p = path.join(dir, `f${f}`);
      assert.ok(fs.readFileSync(p).equals(want[f]!), `contents of f${f}`);
      const st = fs.statSync(p);
      assert.equal(st.mode & 0o777, f % 2 ? 0o555 : 0o444);
      assert.equal(st.mtimeMs, 1000);
    }
  });
}

test('a file that cannot be created fails the drain, naming it', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-writer-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'taken'), 'x');
  const w = new ParallelFileWriter();
  const job = await w.begin(path.join(dir, 'taken'), 0o644, 0o444);
  try {
    await job.write(Buffer.from('data'));
    await job.end();
  } catch {
    /* the error may surface here or at drain */
  }
  await assert.rejects(w.drain(), (e: NodeJS.ErrnoException) => e.code === 'EEXIST' && String(e.path).endsWith('taken'));
  assert.equal(fs.readFileSync(path.join(dir, 'taken'), 'utf8'), 'x', 'an existing file is never written');
});
