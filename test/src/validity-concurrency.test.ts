// Two and four drover-store processes importing and registering overlapping closures at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { Store, lockSync, verifyStore } from '@drover/store';
import { STORE_BIN, tempStore } from '@drover/store/testing';
import { exportStream, makeChain, registrationText, writeOnDisk } from './validity-helpers.js';

function runAsync(env: NodeJS.ProcessEnv, args: string[], input: Buffer | string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [STORE_BIN, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.end(input);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

for (const n of [2, 4]) {
  test(`${n} processes importing and ${n} registering overlapping closures at once`, async (t) => {
    const s = tempStore(`drover-conc${n}-`);
    t.after(s.cleanup);
    // Imports: every process brings the same shared chain (a prefix of different length)
    // and a tail of its own on top of it.
    const shared = makeChain(s.storeDir, 'shared', 30, 20_000);
    const streams = Array.from({ length: n }, (_, k) => {
      const own = makeChain(s.storeDir, `own${k}`, 5, 5_000);
      const upTo = 20 + Math.floor((10 * k) / n);
      own[0]!.references = [shared[upTo - 1]!.path];
      return { paths: [...shared.slice(0, upTo), ...own] };
    });
    // Registrations: overlapping prefixes of one chain already on disk.
    const onDisk = makeChain(s.storeDir, 'disk', 60, 2_000);
    writeOnDisk(onDisk);
    const regs = Array.from({ length: n }, (_, k) => onDisk.slice(0, 40 + Math.floor((20 * k) / n)));

    const results = await Promise.all([
      ...streams.map((st) => runAsync(s.env, ['import'], exportStream(st.paths))),
      ...regs.map((r, k) => runAsync(s.env, ['register-validity', ...(k % 2 ? ['--hash-given'] : [])], registrationText(r, k % 2 === 1))),
    ]);
    results.forEach((r, i) => assert.equal(r.code, 0, `process ${i}: ${r.stderr}`));
    // Each import prints its stream's paths, whoever registered them.
    streams.forEach((st, k) => assert.deepEqual(results[k]!.stdout.trim().split('\n'), st.paths.map((p) => p.path)));

    const store = new Store({ storeDir: s.storeDir, stateDir: s.stateDir });
    t.after(() => store.close());
    assert.deepEqual(await verifyStore(store, { checkContents: true }), []);
    const expected = new Map<string, string[]>();
    for (const p of [...streams.flatMap((st) => st.paths), ...regs.flat()]) expected.set(p.path, [...new Set(p.references)].sort());
    assert.equal(store.db.countValidPaths(), expected.size, 'no duplicates, nothing missing');
    for (const [p, refs] of expected) {
      const info = store.db.queryPathInfo(p);
      assert.ok(info, `${p} is valid`);
      assert.deepEqual(info.references, refs, `references of ${p}`);
      for (const r of info.references) assert.ok(store.db.isValid(r), `closure: ${r} of ${p} is valid`);
    }
    const debris = fs.readdirSync(s.storeDir).filter((x) => x.startsWith('.') || x.endsWith('.lock'));
    assert.deepEqual(debris, [], 'no temp copies or lock files left');
  });
}

test('import waits for an output lock someone holds, unless DROVER_HELD_LOCKS says it is held for it', async (t) => {
  const s = tempStore('drover-heldlock-');
  t.after(s.cleanup);
  const c = makeChain(s.storeDir, 'held', 2, 100);
  fs.mkdirSync(s.storeDir, { recursive: true });
  const l = lockSync(`${c[1]!.path}.lock`);
  t.after(() => l.release());
  const waiting = runAsync(s.env, ['import'], exportStream(c));
  const first = await Promise.race([waiting.then(() => 'finished'), new Promise((r) => setTimeout(() => r('waiting'), 1500))]);
  assert.equal(first, 'waiting', 'import went ahead while the lock was held');
  const held = await runAsync({ ...s.env, DROVER_HELD_LOCKS: `/elsewhere ${c[1]!.path}` }, ['import'], exportStream(c));
  assert.equal(held.code, 0, held.stderr);
  l.release();
  assert.equal((await waiting).code, 0);
});
