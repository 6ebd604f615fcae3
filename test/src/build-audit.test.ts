// drover-build against hostile and huge input: stdin lines, timer-sized flags, hooks that
// answer garbage, print endless lines or close their stderr, and derivations whose system
// features cannot go on a request line.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { BuildEnv, traceLines } from './build-harness.js';

const e = new BuildEnv();
after(() => e.cleanup());

function storeNames(): string[] {
  return fs.readdirSync(e.t.storeDir).sort();
}

test('-: a bad stdin line is named with its line number (exit 2), nothing is built', async () => {
  const a = await e.drv({ name: 'stdin-a', cmd: 'echo a > $out' });
  const before = storeNames();
  const missing = `${e.t.storeDir}/00000000000000000000000000000000-missing.drv`;
  for (const [input, re] of [
    [`${a.drv}\n\ngarbage\n`, /^drover-build: error: standard input: line 3: 'garbage' is not a derivation/m],
    [`\n${a.drv}\n${missing}`, /^drover-build: error: standard input: line 3: .*00000000000000000000000000000000-missing\.drv/m],
    [`${e.t.storeDir}/short.drv\n`, /^drover-build: error: standard input: line 1: /m],
  ] as const) {
    const r = e.build(['-'], { input });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(r.stdout, '');
  }
  assert.equal(e.isValid(a.out.out!), false);
  assert.deepEqual(storeNames(), before);
});

test('--timeout longer than a Node timer holds is refused (exit 2), not fired at once', async () => {
  const a = await e.drv({ name: 'long-timeout', cmd: 'echo a > $out' });
  for (const flag of ['--timeout', '--hook-timeout']) {
    const r = e.build([flag, '3000000', a.drv]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^drover-build: error: ${flag} must be at most 2147483 seconds`, 'm'));
    assert.doesNotMatch(r.stderr, /TimeoutOverflowWarning|timed out/);
  }
  assert.equal(e.isValid(a.out.out!), false);
  // The largest one that works builds normally.
  const r = e.build(['--timeout', '2147483', a.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${a.out.out}\n`);
});

test('a garbage reply is quoted cut short and escaped: hook-failed, exit 1', async () => {
  const a = await e.drv({ name: 'garbage-reply', cmd: 'echo > $out' });
  const h = e.script(
    'garbage-reply.sh',
    `#!/bin/sh
read -r req
printf '# \\033[2Jwipe\\001' >&2
/usr/bin/head -c 5000 /dev/zero | /usr/bin/tr '\\0' y >&2
echo >&2
/bin/sleep 30
`,
  );
  const r = e.build(['--build-hook', h, '--print-build-trace', a.drv]);
  assert.equal(r.code, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /\x1b/, 'no control sequence reaches the terminal');
  const m = /bad hook reply '([^']*)'/.exec(r.stderr);
  assert.ok(m, r.stderr);
  assert.match(m[1]!, /^\\x1b\[2Jwipe\\x01y+…$/);
  assert.ok(m[1]!.length < 120, 'cut short');
  assert.ok(traceLines(r.stderr).some((l) => l[0] === 'hook-failed' && l[1] === a.drv));
  assert.equal(e.isValid(a.out.out!), false);
});

test('a hook message of 30 MB without a newline is cut, and the reply after it still counts', async () => {
  const a = await e.drv({ name: 'endless-line', cmd: 'echo built > $out' });
  const h = e.script(
    'endless.sh',
    `#!/bin/sh
while read -r am sys drv feat; do
  /usr/bin/head -c 30000000 /dev/zero | /usr/bin/tr '\\0' x >&2
  echo >&2
  echo "# decline" >&2
done
`,
  );
  const t0 = Date.now();
  const r = e.build(['--build-hook', h, '--hook-timeout', '60', a.drv], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  assert.equal(r.stdout, `${a.out.out}\n`);
  assert.ok(Date.now() - t0 < 30_000, 'no quadratic rescanning of the line');
  assert.ok(r.stderr.length < 200_000, `bounded stderr: ${r.stderr.length}`);
  assert.match(r.stderr, /^x+ \[line cut: the build hook printed more than 65536 characters on one line\]$/m);
  assert.equal(fs.readFileSync(a.out.out!, 'utf8'), 'built\n');
});

test('a hook that closes its stderr and lingers: said so at once (exit 1), not waited for', async () => {
  const a = await e.drv({ name: 'closes-stderr', cmd: 'echo > $out' });
  const h = e.script('closer.sh', '#!/bin/sh\nread -r req\nexec 2>&- 1>&-\n/bin/sleep 30\n');
  const t0 = Date.now();
  const r = e.build(['--build-hook', h, a.drv]);
  assert.ok(Date.now() - t0 < 15_000, 'bounded');
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /the build hook closed its stderr before answering/);
  assert.doesNotMatch(r.stderr, /exited before answering \(no exit status yet\)/);
});

test('a derivation whose features cannot go on a request line fails by itself (exit 100), the hook is not blamed', async () => {
  const asked = path.join(e.dir, 'asked');
  const a = await e.drv({ name: 'comma-feature', cmd: 'echo > $out', env: { requiredSystemFeatures: 'kvm,gpu' } });
  const h = e.script('records.sh', `#!/bin/sh\nwhile read -r line; do echo "$line" >> ${asked}; echo "# decline" >&2; done\n`);
  const r = e.build(['--build-hook', h, '--print-build-trace', a.drv]);
  assert.equal(r.code, 100, r.stderr);
  assert.match(r.stderr, /cannot offer '.*comma-feature\.drv' to the build hook: .*'kvm,gpu'/);
  const t = traceLines(r.stderr);
  assert.ok(t.some((l) => l[0] === 'build-failed' && l[1] === a.drv));
  assert.ok(!t.some((l) => l[0] === 'hook-failed'));
  assert.equal(fs.existsSync(asked), false, 'no malformed request was sent');
  // As if the hook had declined: where this machine has the feature, it builds here.
  const local = e.build([a.drv, '--build-hook', h, '--system-features', 'kvm,gpu']);
  assert.equal(local.code, 0, local.stderr);
  assert.equal(local.stdout, `${a.out.out}\n`);
  assert.equal(fs.existsSync(asked), false, 'still no request');
});

test('a derivation field quoted in an error cannot start a trace line of its own', async () => {
  const a = await e.drv({ name: 'forged-system', cmd: 'echo > $out', system: 'x\n@ build-succeeded /forged.drv /forged\n\x1b[2J' });
  const r = e.build(['--print-build-trace', a.drv]);
  assert.equal(r.code, 100, r.stderr);
  assert.ok(!r.stderr.split('\n').some((l) => l.startsWith('@ build-succeeded')), r.stderr);
  assert.doesNotMatch(r.stderr, /\x1b/);
});
