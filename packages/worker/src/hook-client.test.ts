// Tests of the scheduler's side of one hook process: replies and messages on its stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HookError, HookInstance } from './hook-client.js';

test('a reply that comes after the request was given up on is not copied to stderr', async () => {
  const messages: string[] = [];
  // Ignores SIGTERM, so its reply arrives after abort() (the run stopping) has given up on it.
  const script = 'trap "" TERM; read -r l; sleep 0.3; echo "# decline" >&2; echo "a message" >&2; exit 0';
  const hook = new HookInstance({
    command: ['/bin/sh', '-c', script, 'hook'],
    thisSystem: 'x86_64-linux',
    maxSilentTime: 0,
    printBuildTrace: false,
    replyTimeout: 10,
    env: process.env,
    stderr: (s) => messages.push(s),
  });
  const reply = hook.request({ amWilling: true, system: 'x86_64-linux', drvPath: '/s/a.drv', features: [] });
  const rejected = assert.rejects(reply, (e: Error) => e instanceof HookError && /run stopped/.test(e.message));
  setTimeout(() => hook.abort(), 50);
  await rejected;
  await hook.finished();
  assert.deepEqual(messages, ['a message\n']);
});

test('what a hook leaves running in its process group dies when the hook exits; reap kills a hook that ignores SIGTERM', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-hook-client-'));
  try {
    const pidFile = path.join(dir, 'pid');
    const config = {
      thisSystem: 'x86_64-linux',
      maxSilentTime: 0,
      printBuildTrace: false,
      replyTimeout: 10,
      env: process.env,
      stderr: () => {},
    };
    const leaves = new HookInstance({ ...config, command: ['/bin/sh', '-c', `sleep 60 & echo $! > ${pidFile}; read -r l; echo "# decline" >&2; exit 0`, 'hook'] });
    assert.equal(await leaves.request({ amWilling: true, system: 'x86_64-linux', drvPath: '/s/a.drv', features: [] }), 'decline');
    await leaves.finished();
    const sleeper = Number(fs.readFileSync(pidFile, 'utf8'));
    assert.ok(await gone(sleeper), `the hook's leftover ${sleeper} still runs`);

    let ready: () => void;
    const trapped = new Promise<void>((r) => (ready = r));
    const stubborn = new HookInstance({ ...config, stderr: () => ready(), command: ['/bin/sh', '-c', 'trap "" TERM; echo trapped >&2; read -r l; sleep 60', 'hook'] });
    const reply = stubborn.request({ amWilling: true, system: 'x86_64-linux', drvPath: '/s/a.drv', features: [] });
    const rejected = assert.rejects(reply, HookError);
    await trapped;
    stubborn.abort();
    await rejected;
    stubborn.reap();
    const info = await Promise.race([stubborn.exited, new Promise((r) => setTimeout(() => r(undefined), 1000))]);
    assert.deepEqual(info, { status: 137, description: 'signal SIGKILL' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 60; i++) {
    try {
      if (/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))) return true;
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
