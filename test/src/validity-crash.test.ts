// SIGKILL at random moments during import and register-validity: the store stays consistent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { Store, verifyStore } from '@drover/store';
import { STORE_BIN, tempStore } from '@drover/store/testing';
import { drover, exportStream, makeChain, registrationText, writeOnDisk, type FakePath } from './validity-helpers.js';

const RUNS = 50;

/** A small deterministic PRNG, so a failing run can be replayed from the printed seed. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** Runs drover-store with `input` and SIGKILLs it after `ms`; resolves with how it ended. */
function runAndKill(env: NodeJS.ProcessEnv, args: string[], input: Buffer | string, ms: number): Promise<'killed' | 'finished'> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [STORE_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.on('error', () => {});
    child.stdin.end(input);
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve('killed');
      else if (code === 0) resolve('finished');
      else reject(new Error(`drover-store ${args.join(' ')} exited ${code}: ${stderr}`));
    });
  });
}

test(`${RUNS} SIGKILLs of import and register-validity leave every batch whole or absent, and verify clean`, async (t) => {
  const s = tempStore('drover-crash-');
  t.after(s.cleanup);
  const seed = Number(process.env.DROVER_CRASH_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`seed ${seed} (DROVER_CRASH_SEED replays it)`);
  const rand = prng(seed);
  const base = makeChain(s.storeDir, 'base', 2, 1000);
  assert.equal(drover(s.env, ['import'], exportStream(base)).code, 0);
  const outcomes = { killed: 0, finished: 0, registered: 0, absent: 0 };
  const batches: { kind: string; paths: FakePath[] }[] = [];
  for (let run = 0; run < RUNS; run++) {
    const kind = run % 2 === 0 ? 'import' : 'register-validity';
    const paths = makeChain(s.storeDir, `${kind}-${run}`, kind === 'import' ? 12 : 40, kind === 'import' ? 128 * 1024 : 32 * 1024);
    paths[0]!.references = [base[1]!.path];
    batches.push({ kind, paths });
    // Node starts in ~150 ms; the work takes a few hundred more: kill anywhere across both.
    const ms = Math.floor(30 + rand() * 380);
    let how: 'killed' | 'finished';
    if (kind === 'import') {
      how = await runAndKill(s.env, ['import'], exportStream(paths), ms);
    } else {
      writeOnDisk(paths);
      how = await runAndKill(s.env, ['register-validity'], registrationText(paths), ms);
    }
    outcomes[how]++;
    const store = new Store({ storeDir: s.storeDir, stateDir: s.stateDir });
    try {
      const problems = await verifyStore(store, { checkContents: true });
      assert.deepEqual(problems, [], `run ${run} (${kind}, killed after ${ms} ms): verify found problems`);
      const valid = paths.map((p) => store.db.isValid(p.path));
      const all = valid.every(Boolean);
      assert.ok(all || valid.every((v) => !v), `run ${run} (${kind}, ${ms} ms): a batch registered in part: ${valid.join(',')}`);
      if (how === 'finished') assert.ok(all, `run ${run}: finished but not valid`);
      outcomes[all ? 'registered' : 'absent']++;
      if (all) for (const p of paths) assert.deepEqual(fs.readFileSync(p.path), p.contents, `run ${run}: contents of ${p.path}`);
    } finally {
      store.close();
    }
  }
  t.diagnostic(`outcomes: ${JSON.stringify(outcomes)}`);
  // Every interrupted batch can be completed afterwards, leftovers notwithstanding.
  for (const b of batches) {
    const r = b.kind === 'import' ? drover(s.env, ['import'], exportStream(b.paths)) : drover(s.env, ['register-validity'], registrationText(b.paths));
    assert.equal(r.code, 0, r.stderr);
  }
  const v = drover(s.env, ['verify', '--check-contents']);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  const leftovers = fs.readdirSync(s.storeDir).filter((n) => n.startsWith('.drover-tmp-'));
  assert.deepEqual(leftovers, [], 'the last imports cleaned the temp copies of killed ones');
  const store = new Store({ storeDir: s.storeDir, stateDir: s.stateDir });
  t.after(() => store.close());
  assert.equal(store.db.countValidPaths(), 2 + batches.reduce((n, b) => n + b.paths.length, 0));
});
