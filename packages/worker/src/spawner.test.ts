import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Spawner, shellQuote } from './spawner.js';

test('shellQuote survives any string through a real shell', () => {
  for (const s of ['', 'plain', "it's", 'a\nb', '$HOME `x` "y" \\z', "''", ' lead and trail ']) {
    const r = spawnSync('/bin/sh', ['-c', `printf '%s' ${shellQuote(s)}`], { encoding: 'utf8' });
    assert.equal(r.stdout, s);
  }
});

test('only shell-exportable variable names go through the spawner', () => {
  assert.equal(Spawner.canPass({ out: '', NIX_BUILD_TOP: '', _x1: '' }), true);
  assert.equal(Spawner.canPass({ 'foo-bar': '' }), false);
  assert.equal(Spawner.canPass({ '1x': '' }), false);
});

test('a job runs with exactly its environment, cwd and log, and reports its status', async () => {
  const sp = Spawner.create();
  assert.ok(sp, 'setsid and /bin/sh are on this machine');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-spawner-'));
  try {
    const log = path.join(dir, 'log');
    const env = { A: "multi\nline 'quoted' $value", PATH: '/path-not-set' };
    const job = sp.start({ cwd: dir, env, cmd: '/bin/sh', args: ['-c', 'echo "$A"; /usr/bin/env | /usr/bin/sort; /bin/pwd; exit 3'], logFile: log });
    const info = await job.exit;
    assert.equal(info.status, 3);
    const out = fs.readFileSync(log, 'utf8');
    assert.ok(out.startsWith(`${env.A}\n`));
    const vars = out.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => l.split('=')[0]);
    // `cd` makes the shell export PWD; nothing of the caller leaks in.
    assert.deepEqual(vars.sort(), ['A', 'PATH', 'PWD']);
    assert.ok(out.trimEnd().endsWith(dir));
    // A killed job ends with its signal.
    const k = sp.start({ cwd: dir, env: {}, cmd: '/bin/sleep', args: ['30'], logFile: log });
    setTimeout(() => k.kill(), 100);
    const ki = await k.exit;
    assert.equal(ki.status, 128 + 9);
  } finally {
    sp.close();
    fs.rmSync(dir, { recursive: true });
  }
});
