// Tests of the session client's checks that need no remote: the store dir a hello names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { helloStoreDirProblem } from './session-client.js';

test('a hello naming our store dir is fine; another one is named, with the fix (used by builds and by check)', () => {
  const m = { uri: 'ssh://root@m1' };
  assert.equal(helloStoreDirProblem(m, { storeDir: '/nix/store' }, '/nix/store'), undefined);
  assert.equal(
    helloStoreDirProblem(m, { storeDir: '/elsewhere/store' }, '/nix/store'),
    "ssh://root@m1 uses the store dir '/elsewhere/store', not '/nix/store' as this machine does (set DROVER_STORE_DIR on the remote)",
  );
});
