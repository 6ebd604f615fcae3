// Tests of the scheduler's side of one hook process: replies and messages on its stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
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
