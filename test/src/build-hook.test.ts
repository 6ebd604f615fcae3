// The build hook protocol from drover-build's side, against small shell hooks: every reply,
// every way a hook can fail, and what the scheduler does with the outputs afterwards.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { STORE_BIN } from '@drover/store/testing';
import { BuildEnv, SYSTEM, traceLines } from './build-harness.js';

const e = new BuildEnv();
after(() => e.cleanup());
const hookLog = path.join(e.dir, 'hook-log');

function logged(): string[] {
  try {
    return fs.readFileSync(hookLog, 'utf8').trim().split('\n');
  } catch {
    return [];
  }
}

/** A hook script: `body` runs for each request with $am $sys $drv $feat set. */
function hook(name: string, body: string): string {
  fs.rmSync(hookLog, { force: true });
  return e.script(
    name,
    `#!/bin/sh
echo "start $*" >> ${hookLog}
while read -r am sys drv feat; do
  echo "req $am $sys $drv [$feat]" >> ${hookLog}
${body}
done
`,
  );
}

/** After accept: reads the two lines the scheduler sends, logging them. */
const READ_PATHS = `  read -r inputs; read -r outputs
  echo "inputs $inputs" >> ${hookLog}; echo "outputs $outputs" >> ${hookLog}`;

test('accept: the hook gets the request, inputs and outputs lines; outputs it leaves are scanned and registered', async () => {
  const dep = await e.drv({ name: 'hook-dep', cmd: 'echo dep > $out' });
  assert.equal(e.build([dep.drv]).code, 0);
  const a = await e.drv({ name: 'remote-a', inputs: [dep], cmd: 'exit 1', env: { requiredSystemFeatures: 'big-parallel kvm' } });
  const h = hook(
    'accept.sh',
    `  echo "a message from the hook" >&2
  echo "# accept" >&2
${READ_PATHS}
  echo "remote log line" >&4
  echo "@ build-remote $drv fake-host" >&2
  for o in $outputs; do echo "$inputs" > $o; done
  exit 0`,
  );
  const r = e.build(['--build-hook', h, '--print-build-trace', '--max-silent-time', '7', a.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${a.out.out}\n`);
  const lines = logged();
  assert.equal(lines[0], `start ${SYSTEM} 7 1`);
  assert.equal(lines[1], `req 1 ${SYSTEM} ${a.drv} [big-parallel,kvm]`);
  const inputs = lines[2]!.split(' ').slice(1).filter((x) => x);
  assert.ok(inputs.includes(dep.out.out!), 'the input closure');
  assert.ok(inputs.includes(a.drv) && inputs.includes(dep.drv), 'the closure of the .drv');
  assert.equal(lines[3], `outputs ${a.out.out}`);
  // Hook messages are passed on; the reply is not.
  assert.match(r.stderr, /^a message from the hook$/m);
  assert.doesNotMatch(r.stderr, /# accept/);
  const t = traceLines(r.stderr);
  assert.deepEqual(t.map((l) => l[0]), ['build-started', 'build-remote', 'build-succeeded']);
  assert.deepEqual(t[1], ['build-remote', a.drv, 'fake-host']);
  // The remote log went to the log file named in build-started.
  assert.equal(fs.readFileSync(t[0]![4]!, 'utf8'), 'remote log line\n');
  const info = e.store.db.queryPathInfo(a.out.out!)!;
  assert.deepEqual(info.references, [dep.out.out!]);
  assert.equal(info.deriver, a.drv);
  assert.equal(fs.statSync(a.out.out!).mtimeMs, 1000);
});

test('accept: outputs the hook registered itself are taken as they are', async () => {
  const dep = await e.drv({ name: 'hook-dep2', cmd: 'echo dep2 > $out' });
  assert.equal(e.build([dep.drv]).code, 0);
  const a = await e.drv({ name: 'remote-registered', inputs: [dep], cmd: 'exit 1' });
  // The hook registers its output with no references although it mentions the input: a
  // scheduler that scanned again would add the reference.
  const h = hook(
    'register.sh',
    `  echo "# accept" >&2
${READ_PATHS}
  for o in $outputs; do echo "$inputs" > $o; printf '%s\\n\\n0\\n' "$o" | ${process.execPath} ${STORE_BIN} register-validity || exit 1; done
  exit 0`,
  );
  const r = e.build(['--build-hook', h, a.drv]);
  assert.equal(r.code, 0, r.stderr);
  const info = e.store.db.queryPathInfo(a.out.out!)!;
  assert.deepEqual(info.references, []);
  assert.equal(info.deriver, undefined);
});

test('decline: the scheduler builds locally, and the same hook answers the next request', async () => {
  const a = await e.drv({ name: 'declined-a', cmd: 'echo local > $out' });
  const b = await e.drv({ name: 'declined-b', inputs: [a], cmd: 'echo local > $out' });
  const h = hook('decline.sh', '  echo "# decline" >&2');
  const r = e.build(['--build-hook', h, '-j', '1', b.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.readFileSync(b.out.out!, 'utf8'), 'local\n');
  const lines = logged();
  assert.equal(lines.filter((l) => l.startsWith('start')).length, 1, 'one hook process for both requests');
  assert.deepEqual(
    lines.filter((l) => l.startsWith('req')),
    [`req 1 ${SYSTEM} ${a.drv} []`, `req 1 ${SYSTEM} ${b.drv} []`],
  );
});

test('a hook named by a relative path is found from the current directory (it runs in /)', async () => {
  const a = await e.drv({ name: 'rel-hook', cmd: 'echo > $out' });
  const h = hook('decline-rel.sh', '  echo "# decline" >&2');
  const r = e.build(['--build-hook', `./${path.basename(h)}`, a.drv], { cwd: path.dirname(h) });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(logged().filter((l) => l.startsWith('req')).length, 1, 'the hook was asked');
});

test('a hook that answers one request and exits: every request still gets a hook that answers', async () => {
  const drvs = [];
  for (let i = 0; i < 8; i++) drvs.push((await e.drv({ name: `once-${i}`, cmd: 'echo > $out' })).drv);
  const h = e.script('once.sh', `#!/bin/sh\nread -r am sys drv feat\necho "req $drv" >> ${hookLog}\necho "# decline" >&2\n`);
  fs.rmSync(hookLog, { force: true });
  const r = e.build(['--build-hook', h, '-j', '2', ...drvs]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n').length, 8);
  // Each was offered (some again after waiting for a local slot, as Nix re-asks too).
  assert.deepEqual([...new Set(logged().map((l) => l.slice(4)))].sort(), [...drvs].sort());
});

test('postpone, then accept: the scheduler asks again, and a fresh hook serves the next request', async () => {
  const a = await e.drv({ name: 'postponed', cmd: 'exit 1' });
  const b = await e.drv({ name: 'after-accept', cmd: 'exit 1' });
  const state = path.join(e.dir, 'postpone-state');
  fs.rmSync(state, { force: true });
  const h = hook(
    'postpone.sh',
    `  if [ "$drv" = "${a.drv}" ] && [ ! -e ${state} ]; then echo > ${state}; echo "# postpone" >&2; continue; fi
  echo "# accept" >&2
${READ_PATHS}
  for o in $outputs; do echo remote > $o; done
  exit 0`,
  );
  const t0 = Date.now();
  const r = e.build(['--build-hook', h, '-j', '1', a.drv, b.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(Date.now() - t0 < 15_000);
  const lines = logged();
  assert.equal(lines.filter((l) => l === `req 1 ${SYSTEM} ${a.drv} []`).length, 2, lines.join('\n'));
  assert.equal(lines.filter((l) => l.startsWith('start')).length, 2, 'a fresh hook after each accept');
  assert.equal(fs.readFileSync(a.out.out!, 'utf8'), 'remote\n');
});

/** A hook that waits (up to 2 s) until it has seen two requests before it accepts; with fewer it declines. */
function waitForTwo(name: string): string {
  return hook(
    name,
    `  n=0
  while [ "$(grep -c '^req' ${hookLog})" -lt 2 ] && [ $n -lt 20 ]; do sleep 0.1; n=$((n+1)); done
  if [ "$(grep -c '^req' ${hookLog})" -lt 2 ]; then echo "# decline" >&2; continue; fi
  echo "# accept" >&2
${READ_PATHS}
  for o in $outputs; do echo remote > $o; done
  exit 0`,
  );
}

test('hook requests in flight at once: the next request goes to another hook before the first has answered', async () => {
  const a = await e.drv({ name: 'parallel-a', cmd: 'exit 1' });
  const b = await e.drv({ name: 'parallel-b', cmd: 'exit 1' });
  const r = e.build(['--build-hook', waitForTwo('parallel.sh'), '-j', '0', a.drv, b.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.readFileSync(a.out.out!, 'utf8'), 'remote\n');
  assert.equal(fs.readFileSync(b.out.out!, 'utf8'), 'remote\n');
  const lines = logged();
  assert.equal(lines.filter((l) => l.startsWith('start')).length, 2, 'one hook process per request in flight');
  assert.equal(lines.filter((l) => l.startsWith('req')).length, 2, lines.join('\n'));
});

test('parallel requests promise each free local slot once: declined goals build, none is left waiting', async () => {
  // Machines "busy" for the first 0.7 s: the hook declines a request that says a local slot
  // is free and postpones one that says none is, then accepts everything.
  const t0 = path.join(e.dir, 'busy-since');
  fs.rmSync(t0, { force: true });
  const h = hook(
    'busy-then-free.sh',
    `  now=$(date +%s%N); [ -f ${t0} ] || echo $now > ${t0}
  if [ $(( now - $(cat ${t0}) )) -lt 700000000 ]; then
    if [ "$am" = 1 ]; then echo "# decline" >&2; else echo "# postpone" >&2; fi
    continue
  fi
  echo "# accept" >&2
${READ_PATHS}
  for o in $outputs; do echo remote > $o; done
  exit 0`,
  );
  const drvs = await Promise.all([0, 1, 2, 3].map((i) => e.drv({ name: `one-slot-${i}`, cmd: `/bin/sleep 1.5; echo local > $out` })));
  const { child, result } = e.start(['--sandbox', 'none', '--build-hook', h, '-j', '1', '--hook-requests', '4', ...drvs.map((d) => d.drv)]);
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const r = await result;
  clearTimeout(timer);
  assert.equal(r.code, 0, `drover-build hung or failed: ${r.stderr}`);
  const built = drvs.map((d) => (e.isValid(d.out.out!) ? fs.readFileSync(d.out.out!, 'utf8').trim() : 'missing'));
  // One built locally (declined while the machines were busy); the rest waited and went remote.
  assert.deepEqual(built.sort(), ['local', 'remote', 'remote', 'remote'], logged().join('\n'));
});

test('--hook-requests 1 asks one hook at a time (and DROVER_HOOK_REQUESTS is checked)', async () => {
  const a = await e.drv({ name: 'serial-a', cmd: 'exit 1' });
  const b = await e.drv({ name: 'serial-b', cmd: 'exit 1' });
  const r = e.build(['--build-hook', waitForTwo('serial.sh'), '-j', '0', '--hook-requests', '1', a.drv, b.drv]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /the build hook declined it and --max-jobs is 0/);
  const bad = e.build(['--build-hook', waitForTwo('serial.sh'), a.drv], { env: { DROVER_HOOK_REQUESTS: 'many' } });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /DROVER_HOOK_REQUESTS='many' is not a whole number >= 1/);
  const zero = e.build(['--build-hook', waitForTwo('serial.sh'), '--hook-requests', '0', a.drv]);
  assert.equal(zero.code, 2);
  assert.match(zero.stderr, /--hook-requests must be a whole number >= 1, got '0'/);
});

test('a reply that is not accept, decline or postpone: bad hook reply, hook-failed, exit 1', async () => {
  const a = await e.drv({ name: 'bad-reply', cmd: 'echo > $out' });
  const h = hook('bad.sh', '  echo "# perhaps" >&2');
  const r = e.build(['--build-hook', h, '--print-build-trace', a.drv]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /bad hook reply 'perhaps'/);
  assert.ok(traceLines(r.stderr).some((l) => l[0] === 'hook-failed' && l[1] === a.drv));
  assert.equal(e.isValid(a.out.out!), false);
});

test('exit 100: the remote build failed, a permanent failure (exit 100)', async () => {
  const a = await e.drv({ name: 'remote-fails', cmd: 'echo > $out' });
  const h = hook(
    'fail100.sh',
    `  echo "# accept" >&2
${READ_PATHS}
  echo "remote: compile error" >&4
  exit 100`,
  );
  const r = e.build(['--build-hook', h, '--print-build-trace', a.drv]);
  assert.equal(r.code, 100, r.stderr);
  assert.ok(traceLines(r.stderr).some((l) => l[0] === 'build-failed' && l[1] === a.drv && l[3] === '100'));
  assert.match(r.stderr, /> remote: compile error/);
});

test('exit 1 after accept: the hook failed, not the build (hook-failed, exit 1)', async () => {
  const a = await e.drv({ name: 'hook-exit1', cmd: 'echo > $out' });
  const h = hook(
    'fail1.sh',
    `  echo "# accept" >&2
${READ_PATHS}
  echo "cannot reach the machine" >&2
  exit 1`,
  );
  const r = e.build(['--build-hook', h, '--print-build-trace', a.drv]);
  assert.equal(r.code, 1, r.stderr);
  const hf = traceLines(r.stderr).find((l) => l[0] === 'hook-failed')!;
  assert.deepEqual(hf.slice(1, 4), [a.drv, a.out.out!, '1']);
  assert.match(r.stderr, /^cannot reach the machine$/m);
});

test('a hook that dies mid-request: a clear error, exit 1', async () => {
  const a = await e.drv({ name: 'hook-dies', cmd: 'echo > $out' });
  const h = hook('dies.sh', '  echo "dying" >&2; exit 3');
  const r = e.build(['--build-hook', h, '--print-build-trace', a.drv]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /exited before answering \(exit code 3\)/);
  assert.ok(traceLines(r.stderr).some((l) => l[0] === 'hook-failed' && l[3] === '3'));
});

test('a hook that cannot be started is a hook failure too', async () => {
  const a = await e.drv({ name: 'hook-missing', cmd: 'echo > $out' });
  const r = e.build(['--build-hook', path.join(e.dir, 'no-such-hook'), a.drv]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /build hook failed/);
  assert.match(r.stderr, /no-such-hook/);
});

test('a hook that never answers is stopped after --hook-timeout', async () => {
  const a = await e.drv({ name: 'hook-hangs', cmd: 'echo > $out' });
  const pidFile = path.join(e.dir, 'hang-pid');
  const h = hook('hang.sh', `  echo $$ > ${pidFile}; /bin/sleep 60`);
  const t0 = Date.now();
  const r = e.build(['--build-hook', h, '--hook-timeout', '1', a.drv]);
  assert.ok(Date.now() - t0 < 10_000, 'bounded');
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /did not answer within 1 seconds/);
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  await new Promise((res) => setTimeout(res, 300));
  // Gone, or a zombie waiting for a reaper (PID 1 in a container may not reap).
  let state = 'gone';
  try {
    state = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[0]!;
  } catch {
    /* gone */
  }
  assert.ok(state === 'gone' || state === 'Z', `the hook was killed (state ${state})`);
});

test('a stopping run does not wait for a hook that has not answered: the first failure ends it at once (exit 100), and so does SIGINT', async () => {
  const bad = await e.drv({ name: 'stop-fastfail', cmd: 'exit 1' });
  const slow = await e.drv({ name: 'stop-unanswered', cmd: 'echo > $out' });
  // Declines the failing one (built here, fails at once), never answers about the other.
  const h = hook('half-hang.sh', `  case $drv in *fastfail*) echo "# decline" >&2;; *) /bin/sleep 60;; esac`);
  const t0 = Date.now();
  const r = e.build(['--build-hook', h, '--hook-timeout', '30', '-j', '2', '--print-build-trace', slow.drv, bad.drv]);
  assert.ok(Date.now() - t0 < 15_000, `ended at once, not after --hook-timeout (${Date.now() - t0} ms)`);
  assert.equal(r.code, 100, r.stderr);
  assert.doesNotMatch(r.stderr, /hook-failed|did not answer/);
  assert.equal(e.isValid(slow.out.out!), false);

  fs.rmSync(hookLog, { force: true });
  const p = e.start(['--sandbox', 'none', '--build-hook', h, '--hook-timeout', '30', slow.drv]);
  for (let i = 0; i < 200 && !logged().some((l) => l.includes(slow.drv)); i++) await new Promise((res) => setTimeout(res, 50));
  const t1 = Date.now();
  p.child.kill('SIGINT');
  const s = await p.result;
  assert.ok(Date.now() - t1 < 10_000, `SIGINT ended the run at once (${Date.now() - t1} ms)`);
  assert.equal(s.code, 1, s.stderr);
  assert.match(s.stderr, /SIGINT: stopping all builds/);
  assert.doesNotMatch(s.stderr, /build hook failed|did not answer/);
});

test('-k: a hook failure does not stop independent builds', async () => {
  const a = await e.drv({ name: 'k-hook-a', cmd: 'echo > $out' });
  const b = await e.drv({ name: 'k-hook-b', cmd: 'echo > $out', env: { preferLocalBuild: '1' } });
  const h = hook('bad2.sh', '  echo "# nonsense" >&2');
  const r = e.build(['--build-hook', h, '-k', a.drv, b.drv]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, `${b.out.out}\n`);
});

test('-j 0: requests say AM_WILLING 0, and a declined derivation fails instead of waiting forever', async () => {
  const a = await e.drv({ name: 'j0-hook', cmd: 'echo > $out' });
  const h = hook('decline0.sh', '  echo "# decline" >&2');
  const r = e.build(['--build-hook', h, '-j', '0', a.drv], { timeoutMs: 20_000 });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /the build hook declined it and --max-jobs is 0/);
  assert.deepEqual(logged().filter((l) => l.startsWith('req')), [`req 0 ${SYSTEM} ${a.drv} []`]);
});

test('--max-silent-time applies to the remote log on fd 4: the hook is stopped (exit 101)', async () => {
  const a = await e.drv({ name: 'remote-silent', cmd: 'echo > $out' });
  const h = hook(
    'silent.sh',
    `  echo "# accept" >&2
${READ_PATHS}
  echo "remote started" >&4
  /bin/sleep 30
  exit 0`,
  );
  const t0 = Date.now();
  const r = e.build(['--build-hook', h, '--max-silent-time', '1', '--print-build-trace', a.drv]);
  assert.ok(Date.now() - t0 < 10_000, 'bounded');
  assert.equal(r.code, 101, r.stderr);
  assert.match(r.stderr, /timed out after 1 seconds of silence/);
  assert.ok(traceLines(r.stderr).some((l) => l[0] === 'build-failed' && l[1] === a.drv));
});
