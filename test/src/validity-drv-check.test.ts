// A .drv whose output paths lie is refused by import and register-validity, as Nix refuses it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { STORE_BIN, listTree, narString, run, tempStore, u64le } from '@drover/store/testing';

const str = narString;
const u64 = u64le;

function bogusDrv(storeDir: string): { drvPath: string; text: string } {
  const out = `${storeDir}/${'a'.repeat(32)}-bogus`;
  const text = `Derive([("out","${out}","","")],[],[],"x86_64-linux","/bin/sh",[],[("builder","/bin/sh"),("name","bogus"),("out","${out}"),("system","x86_64-linux")])`;
  return { drvPath: `${storeDir}/${'b'.repeat(32)}-bogus.drv`, text };
}

test('import refuses a .drv with a wrong output path: exit 2, the store unchanged', (t) => {
  const s = tempStore('drover-drvcheck-');
  t.after(s.cleanup);
  const { drvPath, text } = bogusDrv(s.storeDir);
  const narBytes = Buffer.concat(['nix-archive-1', '(', 'type', 'regular', 'contents', text, ')'].map((x) => str(x)));
  const stream = Buffer.concat([u64(1), narBytes, u64(0x4558494e), str(drvPath), u64(0), str(''), u64(0), u64(0)]);
  const r = run(STORE_BIN, ['import'], { env: s.env, input: stream });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /has incorrect output 'out': '.*-bogus', should be '.*-bogus'/);
  assert.deepEqual(listTree(s.storeDir).filter((p) => !p.startsWith('.')), []);
  assert.equal(run(STORE_BIN, ['dump-db'], { env: s.env }).stdout, '');
});

test('register-validity refuses the same .drv already on disk', (t) => {
  const s = tempStore('drover-drvcheck-');
  t.after(s.cleanup);
  const { drvPath, text } = bogusDrv(s.storeDir);
  fs.mkdirSync(s.storeDir, { recursive: true });
  fs.writeFileSync(drvPath, text);
  const r = run(STORE_BIN, ['register-validity'], { env: s.env, input: `${drvPath}\n\n0\n` });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /incorrect output 'out'/);
  assert.equal(run(STORE_BIN, ['query', '--valid', drvPath], { env: s.env }).code, 1);
});
