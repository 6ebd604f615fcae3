// Tests of what status and check print, without machines to reach: out-of-service lines, a missing file, one host on two lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseMachines } from './machines.js';
import { hookSettings } from './settings.js';
import { checkMachine, farmStatus, formatCheck, formatStatus } from './status.js';

const NOW = 1_000_000;

test('status: a machine with MAX_JOBS 0 is out of service, not "0/0 ok"; one host on two lines shows its options', () => {
  const ms = parseMachines('ssh://a x86_64-linux - 0\nssh://b x86_64-linux - 2\nssh://b?engine=nix x86_64-linux - 1\nssh://c x86_64-linux /no/such/key\n', '/etc/m');
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-status-'));
  let st;
  try {
    st = farmStatus(ms, state, hookSettings({}));
  } finally {
    fs.rmSync(state, { recursive: true, force: true });
  }
  st[1]!.busy = [{ slot: 0, pid: 42, drv: '/s/x.drv', since: NOW - 5000 }];
  const lines = formatStatus({ file: '/etc/m', missing: false }, st, 'x86_64-linux', NOW);
  assert.equal(lines[0], 'machines file: /etc/m (4 machines)');
  assert.match(lines.find((l) => l.startsWith('ssh://a '))!, /^ssh:\/\/a\s+x86_64-linux\s+-\s+1\s+-\s+out of service \(max jobs 0\)$/);
  assert.match(lines.find((l) => l.startsWith('ssh://b '))!, /^ssh:\/\/b\s+x86_64-linux\s+1\/2\s+1\s+-\s+ok$/);
  assert.match(lines.find((l) => l.startsWith('ssh://b?'))!, /^ssh:\/\/b\?engine=nix\s+x86_64-linux\s+0\/1\s+1\s+-\s+ok$/);
  assert.ok(lines.includes('  ssh://b slot 0: pid 42 building /s/x.drv for 5s'));
  // A key the hook cannot use leaves no failure record (it is skipped at once), so status says so itself.
  assert.match(lines.find((l) => l.startsWith('ssh://c '))!, /^ssh:\/\/c\s+x86_64-linux\s+0\/1\s+1\s+-\s+SSH key unusable \(see check\)$/);
});

test('status and check say when the machines file does not exist', () => {
  const src = { file: '/home/me/.config/drover/machines', missing: true };
  const want = 'machines file: /home/me/.config/drover/machines does not exist (no machines: the hook declines every build, which then runs locally)';
  assert.deepEqual(formatStatus(src, [], 'x86_64-linux', NOW), [want]);
  assert.deepEqual(formatCheck(src, []), [want]);
  assert.deepEqual(formatStatus({ ...src, missing: false }, [], 'x86_64-linux', NOW), ['machines file: /home/me/.config/drover/machines (0 machines)']);
});

test('check skips a machine with MAX_JOBS 0 without connecting: out of service, not a failure', async () => {
  // Port 1 on a name that does not resolve: any connection attempt would fail.
  const [m] = parseMachines('ssh://nowhere.invalid:1 x86_64-linux /no/such/key 0\n', '/etc/m');
  const r = await checkMachine(m!, { stateDir: path.join(os.tmpdir(), 'drover-status-never-made'), storeDir: '/s', settings: hookSettings({}) });
  assert.equal(r.ok, true);
  assert.deepEqual(formatCheck({ file: '/etc/m', missing: false }, [r]), ['machines file: /etc/m (1 machine)', 'ssh://nowhere.invalid:1: out of service (max jobs 0)']);
});

test("status: a failure's message from the remote stays on its line, without its escapes", () => {
  const [m] = parseMachines('ssh://a x86_64-linux - 1\n', '/etc/m');
  const st = [{ machine: m!, busy: [], health: { failures: 2, lastFailure: NOW - 3000, retryAt: NOW + 7000, lastError: 'ended: oops\n# accept\x1b[2J' } }];
  const lines = formatStatus({ file: '/etc/m', missing: false }, st, 'x86_64-linux', NOW);
  assert.equal(lines.at(-1), '  ssh://a: 2 in a row, last 3s ago: ended: oops; # accept?[2J');
});
