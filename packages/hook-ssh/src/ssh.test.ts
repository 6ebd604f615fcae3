// Tests of the ssh command line the hook builds: transfer options after the user's, the cipher choice and its setting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseMachines } from './machines.js';
import { FAST_CIPHERS, cpuHasAes, hookSettings } from './settings.js';
import { sshArgs } from './ssh.js';

const m = parseMachines('ssh://root@farm:2222 x86_64-linux - 2 1')[0]!;

function argsWith(env: NodeJS.ProcessEnv): string[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-ssh-args-'));
  try {
    return sshArgs(dir, m, hookSettings(env));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The value of each `-o` option, in order. */
function options(a: string[]): string[] {
  return a.flatMap((x, i) => (a[i - 1] === '-o' ? [x] : []));
}

test('compression off and the cipher choice come after the user options, so DROVER_SSHOPTS can overrule them (ssh takes the first value)', () => {
  const a = argsWith({ DROVER_SSHOPTS: '-o Compression=yes -o Ciphers=aes256-ctr', DROVER_HOOK_SSH_CIPHERS: FAST_CIPHERS });
  const o = options(a);
  assert.ok(o.indexOf('Compression=yes') < o.indexOf('Compression=no') && o.indexOf('Compression=yes') >= 0);
  assert.ok(o.indexOf('Ciphers=aes256-ctr') < o.indexOf(`Ciphers=${FAST_CIPHERS}`) && o.indexOf('Ciphers=aes256-ctr') >= 0);
  assert.deepEqual(a.slice(-2), ['--', 'root@farm']);
});

test("DROVER_HOOK_SSH_CIPHERS: empty leaves the cipher to ssh, a list is passed on, nonsense is refused", () => {
  assert.ok(!options(argsWith({ DROVER_HOOK_SSH_CIPHERS: '' })).some((x) => x.startsWith('Ciphers=')));
  assert.ok(options(argsWith({ DROVER_HOOK_SSH_CIPHERS: 'chacha20-poly1305@openssh.com' })).includes('Ciphers=chacha20-poly1305@openssh.com'));
  assert.throws(() => hookSettings({ DROVER_HOOK_SSH_CIPHERS: 'aes; rm -rf /' }), /DROVER_HOOK_SSH_CIPHERS='aes; rm -rf \/' is not a cipher list/);
  // Unset: AES-GCM first exactly when this CPU has AES instructions.
  assert.equal(hookSettings({}).ciphers, cpuHasAes() ? FAST_CIPHERS : '');
});

test('cpuHasAes reads the x86 flags and the arm64 features', () => {
  assert.equal(cpuHasAes('processor\t: 0\nflags\t\t: fpu sse2 aes avx2\n'), true);
  assert.equal(cpuHasAes('processor\t: 0\nflags\t\t: fpu sse2 avx2 vaes_not\n'), false);
  assert.equal(cpuHasAes('Features\t: fp asimd aes pmull sha2\n'), true);
  assert.equal(cpuHasAes('Features\t: fp asimd\nmodel name\t: aes-less\n'), false);
});
