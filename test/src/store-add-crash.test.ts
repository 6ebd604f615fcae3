// kill -9 of `drover-store add` at random moments: the store stays consistent for real Nix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { STORE_BIN, makeTrickyTree, run, tempStore } from '@drover/store/testing';
import { Store, checkDerivation, derivationsToJson, type Derivation } from '@drover/store';
import { nix, nixEnv } from './nix-env.js';

test('add survives SIGKILL at any moment: each time the path is valid and complete, or not valid', async (t) => {
  const s = tempStore('drover-add-crash-');
  t.after(s.cleanup);
  const tree = path.join(s.dir, 'tree');
  makeTrickyTree(tree);
  // Enough files that a kill lands inside the copy most of the time.
  fs.mkdirSync(path.join(tree, 'many'));
  for (let i = 0; i < 400; i++) fs.writeFileSync(path.join(tree, 'many', `f${i}`), `file ${i}\n`.repeat(200));
  const env = { ...s.env, ...nixEnv(s.dir, s.storeDir, s.stateDir) };
  const want = run(STORE_BIN, ['add', '--dry-run', tree], { env }).stdout.trim();
  const wantHash = `sha256:${run(STORE_BIN, ['hash', '--base32', tree]).stdout.trim()}`;
  let killedValid = 0;
  let killedInvalid = 0;
  for (let i = 0; i < 25; i++) {
    const child = spawn(process.execPath, [STORE_BIN, 'add', tree], { env: { ...process.env, ...env }, stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    await Promise.race([exited, new Promise((r) => setTimeout(r, 50 + Math.random() * 1200))]);
    child.kill('SIGKILL');
    await exited;
    // Nix finds nothing wrong with the DB or any valid path's contents.
    const verify = spawnSync('nix-store', ['--verify', '--check-contents'], { env: { ...process.env, ...env } });
    assert.equal(verify.status, 0, `run ${i}: ${verify.stderr}`);
    assert.equal(verify.stderr.toString().replace(/^(reading the Nix store|checking .*)\.\.\.\n/gm, ''), '', `run ${i}`);
    const valid = spawnSync('nix-store', ['--check-validity', want], { env: { ...process.env, ...env } }).status === 0;
    if (valid) {
      killedValid++;
      assert.equal(nix('nix-store', ['-q', '--hash', want], env).toString().trim(), wantHash);
      assert.equal(run(STORE_BIN, ['hash', '--base32', want]).stdout.trim(), wantHash.slice(7), 'contents complete');
      // Start over so the next kill can land mid-copy again.
      nix('nix-store', ['--delete', want], env);
    } else killedInvalid++;
  }
  // Whatever the kills left behind, the next add completes and Nix agrees.
  const done = run(STORE_BIN, ['add', tree], { env });
  assert.equal(done.code, 0, done.stderr);
  assert.equal(done.stdout.trim(), want);
  assert.equal(nix('nix-store', ['-q', '--hash', want], env).toString().trim(), wantHash);
  assert.ok(killedInvalid > 0, 'some kills should land before registration');
  t.diagnostic(`kills after registration: ${killedValid}, before: ${killedInvalid}`);
});

test('derivation add survives SIGKILL at any moment: a batch is valid whole or not at all, and a killed run leaves at most one scratch dir', async (t) => {
  const s = tempStore('drover-drv-add-crash-');
  t.after(s.cleanup);
  const env = { ...s.env, ...nixEnv(s.dir, s.storeDir, s.stateDir) };
  // The DB first, so the chain's paths can be computed against it.
  assert.equal(run(STORE_BIN, ['failed', '--list'], { env }).code, 0);
  const store = new Store({ storeDir: s.storeDir, stateDir: s.stateDir });
  const batches: { paths: string[]; json: string }[] = [];
  for (let b = 0; b < 8; b++) {
    // A chain, each derivation an input of the next: a registration per .drv would leave a prefix.
    const pending = new Map<string, Derivation>();
    const entries: [string, Derivation][] = [];
    let prev: string | undefined;
    for (let i = 0; i < 150; i++) {
      const name = `b${b}-d${i}`;
      const drv: Derivation = {
        outputs: { out: { path: '' } }, inputDrvs: prev ? { [prev]: ['out'] } : {}, inputSrcs: [], system: 'x86_64-linux', builder: '/bin/sh',
        args: ['-c', `echo ${i} > $out`], env: { name, builder: '/bin/sh', system: 'x86_64-linux', out: '', pad: 'x'.repeat(2000) },
      };
      const c = checkDerivation(store, drv, name, { pending });
      pending.set(c.drvPath, c.drv);
      entries.push([c.drvPath, c.drv]);
      prev = c.drvPath;
    }
    batches.push({ paths: entries.map(([p]) => p), json: derivationsToJson(entries) });
  }
  store.close();
  const scratch = () => fs.readdirSync(s.storeDir).filter((n) => n.startsWith('.drover-tmp-'));
  const counts = { whole: 0, none: 0 };
  for (const [i, b] of batches.entries()) {
    const child = spawn(process.execPath, [STORE_BIN, 'derivation', 'add', '-'], { env: { ...process.env, ...env }, stdio: ['pipe', 'ignore', 'ignore'] });
    child.stdin.on('error', () => {});
    child.stdin.end(b.json);
    const exited = new Promise((r) => child.once('exit', r));
    await Promise.race([exited, new Promise((r) => setTimeout(r, 100 + Math.random() * 700))]);
    child.kill('SIGKILL');
    await exited;
    const verify = spawnSync('nix-store', ['--verify', '--check-contents'], { env: { ...process.env, ...env } });
    assert.equal(verify.status, 0, `run ${i}: ${verify.stderr}`);
    const invalid = nix('nix-store', ['--check-validity', '--print-invalid', ...b.paths], env).toString().split('\n').filter(Boolean);
    const valid = b.paths.length - invalid.length;
    assert.ok(valid === 0 || valid === b.paths.length, `run ${i}: ${valid} of ${b.paths.length} valid`);
    counts[valid === 0 ? 'none' : 'whole']++;
    assert.ok(scratch().length <= 1, `run ${i}: scratch copies left: ${scratch().join(' ')}`);
  }
  // Each batch added again: all valid, and the last killed run's scratch copy is gone.
  for (const b of batches) assert.equal(run(STORE_BIN, ['derivation', 'add', '-'], { env, input: b.json }).code, 0);
  assert.deepEqual(scratch(), []);
  t.diagnostic(`kills before the registration: ${counts.none}, after: ${counts.whole}`);
});
