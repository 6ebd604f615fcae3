// Tests of the ssh command line the hook builds: transfer options after the user's, the cipher choice and its setting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseMachines } from './machines.js';
import { FAST_CIPHERS, cpuHasAes, hookSettings } from './settings.js';
import { hostKeyFingerprint, sshArgs, sshKeyProblem, summariseSshLog } from './ssh.js';

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

/** What ssh 9 writes into its -E log when the host shows another key than the known one. */
const CHANGED_KEY_LOG = `@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:WF8KJhjw02KkXzygYGWlx4DGkvbvneBqjdsFHf7myY4.
Please contact your system administrator.
Add correct host key in /st/hook-ssh/known_hosts/root@farm-2222-0c2d7a9d to get rid of this message.
Offending ED25519 key in /st/hook-ssh/known_hosts/root@farm-2222-0c2d7a9d:1
  remove with:
  ssh-keygen -f "/st/hook-ssh/known_hosts/root@farm-2222-0c2d7a9d" -R "drover-root@farm-2222-0c2d7a9d"
Host key for drover-root@farm-2222-0c2d7a9d has changed and you have requested strict checking.
Host key verification failed.
`;

test('a wrong pinned host key: the short reason and the machines file line that pins it, not ssh\'s banner', () => {
  const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHb4m3yqRk6kqW8v1a2s3d4f5g6h7j8k9l0z1x2c3v4b';
  const pinned = parseMachines(`# farm\nssh://root@farm:2222 x86_64-linux - 2 1 - - ${Buffer.from(key).toString('base64')}`, '/etc/m')[0]!;
  const msg = summariseSshLog(CHANGED_KEY_LOG, pinned);
  assert.equal(
    msg,
    "Host key verification failed: the host key pinned in field 8 (HOST_KEY_BASE64) of line 2 of the machines file '/etc/m' (SHA256:b0Gv+rVgtY3jFj8qPZAf5glM5PhirQ0GkXjisnlc+I4) " +
      'does not match the ED25519 key SHA256:WF8KJhjw02KkXzygYGWlx4DGkvbvneBqjdsFHf7myY4 that the host presents',
  );
  // As `ssh-keygen -lf` prints it.
  assert.equal(hostKeyFingerprint(key), 'SHA256:b0Gv+rVgtY3jFj8qPZAf5glM5PhirQ0GkXjisnlc+I4');
  // Without a pin: the user's own known_hosts is at stake, so its file and line stay.
  const unpinned = summariseSshLog(CHANGED_KEY_LOG.replace(/\/st\/hook-ssh\/known_hosts\/root@farm-2222-0c2d7a9d/g, '/root/.ssh/known_hosts'), m);
  assert.match(unpinned, /^Host key verification failed: Offending ED25519 key in \/root\/\.ssh\/known_hosts:1; Host key for \S+ has changed and you have requested strict checking\. \(the host presents the ED25519 key SHA256:WF8K\S+\)$/);
  assert.doesNotMatch(msg + unpinned, /@@@|NASTY|Add correct host key/);
  // Other messages pass as they are, one line.
  assert.equal(summariseSshLog('Warning: Permanently added x\nssh: connect to host h port 22: Connection refused\n'), 'ssh: connect to host h port 22: Connection refused');
});

test('an SSH key that is missing, a directory or open to others is named with its machines file line before any connection', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-ssh-key-'));
  try {
    const line = (key: string) => parseMachines(`\nssh://h x86_64-linux ${key}`, '/etc/m')[0]!;
    assert.equal(sshKeyProblem(line('-')), undefined);
    assert.equal(sshKeyProblem(line(path.join(dir, 'nope'))), `the SSH key '${path.join(dir, 'nope')}' named on line 2 of the machines file '/etc/m' is not readable: no such file`);
    assert.match(sshKeyProblem(line(dir))!, /named on line 2 of the machines file '\/etc\/m' is not readable: it is a directory$/);
    const key = path.join(dir, 'key');
    fs.writeFileSync(key, 'secret\n', { mode: 0o600 });
    assert.equal(sshKeyProblem(line(key)), undefined);
    fs.chmodSync(key, 0o644);
    assert.match(sshKeyProblem(line(key))!, /cannot be used: others may read it \(mode 0644\), so ssh ignores it; chmod 600 /);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
