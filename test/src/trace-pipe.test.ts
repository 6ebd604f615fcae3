// drover-build's trace piped into drover-trace, as a user runs them: the events say what happened.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BuildEnv } from './build-harness.js';

const TRACE_BIN = fileURLToPath(new URL('../../packages/trace/bin/drover-trace.js', import.meta.url));
const e = new BuildEnv();
after(() => e.cleanup());

function trace(args: string[], input: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [TRACE_BIN, ...args], { input, maxBuffer: 1 << 26 });
  return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

test('drover-build --print-build-trace | drover-trace --format json: every build, its verdict and its cause', async () => {
  const base = await e.drv({ name: 'pipe-base', cmd: 'echo > $out' });
  const bad = await e.drv({ name: 'pipe-bad', inputs: [base], cmd: 'echo oops; exit 3' });
  const above = await e.drv({ name: 'pipe-above', inputs: [bad], cmd: 'echo > $out' });
  const good = await e.drv({ name: 'pipe-good', inputs: [base], cmd: 'echo > $out' });
  const elsewhere = await e.drv({ name: 'pipe-elsewhere', cmd: 'echo > $out', system: 'mips64-plan9' });
  const r = e.build(['-k', '--print-build-trace', above.drv, good.drv, elsewhere.drv]);
  assert.equal(r.code, 100, r.stderr);

  const t = trace(['--format', 'json'], r.stderr);
  assert.equal(t.code, 1, `a failure was reported: ${t.stderr}`);
  const events = t.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; drv?: string; cause?: string; source: string });
  assert.ok(events.every((ev) => ev.source === 'drover'));
  const verdicts = new Map<string, string>();
  for (const ev of events) {
    if (ev.type === 'build-succeeded') verdicts.set(ev.drv!, 'ok');
    if (ev.type === 'build-failed') verdicts.set(ev.drv!, ev.cause!);
  }
  assert.deepEqual(
    Object.fromEntries(verdicts),
    Object.fromEntries([
      [base.drv, 'ok'],
      [good.drv, 'ok'],
      [bad.drv, 'builder'],
      [above.drv, 'dependency'],
      [elsewhere.drv, 'unsupported'],
    ]),
  );
  // drover-build's own messages are not trace lines: they pass through, on stderr.
  assert.match(t.stderr, /drover-build: error: builder for '.*pipe-bad\.drv' failed with exit code 3/);

  const summary = trace(['--format', 'summary'], r.stderr);
  assert.equal(summary.code, 1);
  assert.match(summary.stdout, /^Totals: 5 builds: 2 succeeded, 3 failed/m);
  assert.match(summary.stdout, /FAILED +- +local +pipe-above +a dependency failed$/m);
  // The tail comes from the log file drover-build named: it is where a derivation's log belongs.
  assert.match(summary.stdout, /^ {4}last 1 lines of \S+\/drvs\/[0-9a-z]{2}\/[0-9a-z]{30}-pipe-bad\.drv:\n {4}\| oops$/m);
});
