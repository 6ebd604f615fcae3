// Tests for errors.ts's runMain: exit codes, and a command that stops without finishing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const ERRORS = new URL('./errors.js', import.meta.url).href;

function run(mainBody: string): { status: number | null; stderr: string } {
  const script = `import { runMain, UsageError } from ${JSON.stringify(ERRORS)};\nrunMain('tool', async () => { ${mainBody} });\n`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

test("a command's code, a DroverError's code and message, a bug's message with exit 1", () => {
  assert.deepEqual(run('return 3;'), { status: 3, stderr: '' });
  assert.deepEqual(run("throw new UsageError('no such option');"), { status: 2, stderr: 'tool: error: no such option\n' });
  assert.deepEqual(run("throw new Error('boom');"), { status: 1, stderr: 'tool: error: boom\n' });
});

test('a command that stops without finishing (nothing left to wake it) exits 1, not 0, and says so', () => {
  assert.deepEqual(run('await new Promise(() => {});'), { status: 1, stderr: 'tool: error: internal error: the command stopped before it finished\n' });
});
