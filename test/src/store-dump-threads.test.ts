// drover-store dump of a tree big enough for its reader thread, against live nix-store --dump.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { randomFillSync } from 'node:crypto';
import { STORE_BIN, run, tempStore } from '@drover/store/testing';
import { nix, nixEnv } from './nix-env.js';

const s = tempStore('drover-dump-threads-');
const tree = path.join(s.dir, 'tree');
const env = { ...s.env, ...nixEnv(s.dir, s.storeDir, s.stateDir) };

/** ~12 MB in 1500 files (the thread starts), files cut into 1 MiB jobs, and awkward names. */
before(() => {
  const data = randomFillSync(Buffer.alloc(3 << 20));
  for (let i = 0; i < 1500; i++) {
    const sub = path.join(tree, `d${i % 17}`, `e${i % 3}`);
    fs.mkdirSync(sub, { recursive: true });
    const size = (i * 7919) % 12_000;
    fs.writeFileSync(path.join(sub, `f${i}`), data.subarray(i, i + size), { mode: i % 11 === 0 ? 0o755 : 0o644 });
  }
  fs.writeFileSync(path.join(tree, 'big'), data.subarray(0, (2 << 20) + 777));
  fs.writeFileSync(path.join(tree, 'empty'), '');
  fs.symlinkSync('d1/e1/f1', path.join(tree, 'link'));
  for (const name of ['\u{1F600}', '\uFFFD', 'é', 'Z', '_', 'a b']) fs.writeFileSync(path.join(tree, name), name);
  fs.writeFileSync(Buffer.concat([Buffer.from(`${tree}/`), Buffer.from([0x62, 0xff])]), 'not utf-8');
});
after(() => s.cleanup());

test('dump of a tree that takes the reader thread equals nix-store --dump, run after run', () => {
  const expected = nix('nix-store', ['--dump', tree], env);
  for (let i = 0; i < 3; i++) {
    const mine = run(STORE_BIN, ['dump', tree]);
    assert.equal(mine.code, 0, mine.stderr);
    assert.ok(mine.stdoutBytes.equals(expected), `run ${i}: NAR bytes differ from nix-store --dump`);
  }
  assert.equal(run(STORE_BIN, ['hash', tree]).stdout, nix('nix-hash', ['--type', 'sha256', tree], env).toString());
});
