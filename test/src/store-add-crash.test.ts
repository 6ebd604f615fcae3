// kill -9 of `drover-store add` at random moments: the store stays consistent for real Nix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { STORE_BIN, makeTrickyTree, run, tempStore } from '@drover/store/testing';
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
