// drover-hook-ssh run directly, as a scheduler runs it: replies, and refusal of bad arguments, requests and machines files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { BIN_DIR, localSystem } from './sshd-harness.js';

const HOOK = path.join(BIN_DIR, 'drover-hook-ssh');

function withDirs(fn: (d: { dir: string; env: NodeJS.ProcessEnv; drv: string }) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-hook-proto-'));
  try {
    const env = {
      ...process.env,
      DROVER_STORE_DIR: path.join(dir, 'store'),
      DROVER_STATE_DIR: path.join(dir, 'state'),
      XDG_CONFIG_HOME: path.join(dir, 'config'),
      DROVER_MACHINES: '',
    };
    fn({ dir, env, drv: path.join(dir, 'store', '0123456789abcdfghijklmnpqrsvwxyz-x.drv') });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function hook(args: string[], input: string, env: NodeJS.ProcessEnv) {
  return spawnSync(HOOK, args, { input, env, encoding: 'utf8', timeout: 20000 });
}

test('no machines: every request is declined by the same process, which exits 0 when stdin closes', () => {
  withDirs(({ env, drv }) => {
    const sys = localSystem();
    const r = hook([sys, '0', '0'], `1 ${sys} ${drv} \n0 ${sys} ${drv} \n1 other-system ${drv} kvm\n`, env);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '');
    const replies = r.stderr.split('\n').filter((l) => l.startsWith('# '));
    assert.deepEqual(replies, ['# decline', '# decline', '# decline']);
    assert.match(r.stderr, /no machine can build '.*x\.drv' \(system other-system, features kvm\): the machines file lists no machines/);
  });
});

test('a malformed machines file: exit 2 naming file, line and field; no reply', () => {
  withDirs(({ dir, env, drv }) => {
    const file = path.join(dir, 'machines');
    fs.writeFileSync(file, '# farm\nssh://ok x86_64-linux - 2\nssh://bad x86_64-linux - lots\n');
    const r = hook([localSystem(), '0', '0'], `1 ${localSystem()} ${drv} \n`, { ...env, DROVER_MACHINES: file });
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`^drover-hook-ssh: error: machines file '${file}', line 3, field 4 \\(MAX_JOBS\\): 'lots' is not a whole number`, 'm'));
    assert.doesNotMatch(r.stderr, /^# /m);
  });
});

test('bad request lines and bad arguments are refused with exit 2', () => {
  withDirs(({ env, drv }) => {
    const sys = localSystem();
    const r = hook([sys, '0', '0'], `1 ${sys} ${drv} \nyes please\n`, env);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^# decline$/m, 'the good request before it was answered');
    assert.match(r.stderr, /error: request line 'yes please' has 2 space-separated fields/);
    const r2 = hook([sys, '0', '0'], `1 ${sys} /etc/passwd.drv \n`, env);
    assert.equal(r2.status, 2);
    assert.match(r2.stderr, /DRV_PATH '\/etc\/passwd\.drv' is not a store path in /);
    for (const [args, re] of [
      [[sys, 'soon', '0'], /MAX_SILENT_TIME must be a whole number of seconds, got 'soon'/],
      [[sys, '0', '2'], /PRINT_BUILD_TRACE must be 0 or 1, got '2'/],
      [['x/y', '0', '0'], /THIS_SYSTEM 'x\/y' is not a system name/],
      [['status', '--idle'], /Not enough arguments following: idle|Unknown argument/],
    ] as const) {
      const b = hook([...args], '', env);
      assert.equal(b.status, 2, b.stderr);
      assert.match(b.stderr, re);
    }
  });
});

test('status and check with no machines file say it does not exist; a bad environment setting', () => {
  withDirs(({ dir, env }) => {
    const r = spawnSync(HOOK, ['status'], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const missing = `machines file: ${path.join(dir, 'config', 'drover', 'machines')} does not exist (no machines: the hook declines every build, which then runs locally)\n`;
    assert.equal(r.stdout, missing);
    const c = spawnSync(HOOK, ['check'], { env, encoding: 'utf8' });
    assert.equal(c.status, 0, c.stderr);
    assert.equal(c.stdout, missing);
    fs.mkdirSync(path.join(dir, 'config', 'drover'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'config', 'drover', 'machines'), '# none yet\n');
    assert.match(spawnSync(HOOK, ['status'], { env, encoding: 'utf8' }).stdout, /^machines file: .*config\/drover\/machines \(0 machines\)$/m);
    const b = spawnSync(HOOK, ['status'], { env: { ...env, DROVER_HOOK_SSH_BACKOFF: 'often' }, encoding: 'utf8' });
    assert.equal(b.status, 2);
    assert.match(b.stderr, /DROVER_HOOK_SSH_BACKOFF='often' is not BASE\[:MAX\] in seconds/);
  });
});

test('an unknown option is named as such, with or without a command', () => {
  withDirs(({ env }) => {
    for (const args of [['--bogus'], ['status', '--bogus'], ['check', '--bogus=1'], [localSystem(), '0', '0', '--bogus']]) {
      const r = hook(args, '', env);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, `drover-hook-ssh: error: unknown option '--bogus' (see drover-hook-ssh --help)\n`, args.join(' '));
    }
    const h = hook(['-h'], '', env);
    assert.equal(h.status, 0, h.stderr);
    assert.match(h.stdout, /drover-hook-ssh status \| check/);
  });
});
