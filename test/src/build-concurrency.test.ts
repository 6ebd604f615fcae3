// drover-build under stress: two processes on overlapping DAGs, kill -9 mid-build, a failure
// deep in a DAG with and without -k.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { STORE_BIN, run } from '@drover/store/testing';
import { BuildEnv, traceLines, type Built } from './build-harness.js';

const e = new BuildEnv();
after(() => e.cleanup());

/** A builder that appends its name to `counter` under flock, takes a while, then writes $out. */
function counted(counter: string, sleep: string): string {
  return `/usr/bin/flock ${counter}.lock /bin/sh -c "echo $name >> ${counter}"; /bin/sleep ${sleep}; echo $name > $out`;
}

test('two drover-build processes on overlapping DAGs build every derivation once', async () => {
  const counter = path.join(e.dir, 'overlap-count');
  const shared: Built[] = [];
  for (let i = 0; i < 4; i++) shared.push(await e.drv({ name: `shared-${i}`, inputs: shared.slice(0, i), cmd: counted(counter, '0.2') }));
  const left = await e.drv({ name: 'left', inputs: [shared[3]!], cmd: counted(counter, '0.1') });
  const right = await e.drv({ name: 'right', inputs: [shared[3]!, shared[1]!], cmd: counted(counter, '0.1') });
  const env = { DROVER_NO_SYNC: '0' };
  const p1 = e.start(['--sandbox', 'none', '-j', '2', left.drv, shared[2]!.drv], { env });
  const p2 = e.start(['--sandbox', 'none', '-j', '2', right.drv, shared[0]!.drv], { env });
  const [r1, r2] = await Promise.all([p1.result, p2.result]);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(r1.stdout, `${left.out.out}\n${shared[2]!.out.out}\n`);
  assert.equal(r2.stdout, `${right.out.out}\n${shared[0]!.out.out}\n`);
  const runs = fs.readFileSync(counter, 'utf8').trim().split('\n').sort();
  assert.deepEqual(runs, ['left', 'right', 'shared-0', 'shared-1', 'shared-2', 'shared-3']);
  for (const b of [...shared, left, right]) assert.equal(e.isValid(b.out.out!), true);
});

test('kill -9 mid-build leaves nothing half-registered, and the next run finishes the work', async () => {
  for (const sandbox of ['none', 'auto']) {
    const first = await e.drv({ name: `k-first-${sandbox}`, cmd: 'echo first > $out' });
    const slow = await e.drv({ name: `k-slow-${sandbox}`, outputs: ['out', 'doc'], inputs: [first], cmd: 'echo > $doc; /bin/sleep 2; echo slow > $out' });
    const last = await e.drv({ name: `k-last-${sandbox}`, inputs: [slow], cmd: 'echo last > $out' });
    const p = e.start(['--sandbox', sandbox, '--print-build-trace', last.drv], { env: { DROVER_NO_SYNC: '0' } });
    // Wait until the slow builder has started, then kill the scheduler outright.
    let stderr = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`k-slow never started: ${stderr}`)), 20_000);
      p.child.stderr!.on('data', (c) => {
        stderr += c;
        if (stderr.includes(`@ build-started ${slow.drv}`)) {
          clearTimeout(t);
          setTimeout(resolve, 300);
        }
      });
    });
    p.child.kill('SIGKILL');
    await p.result;
    assert.equal(e.isValid(first.out.out!), true, 'what finished before is valid');
    assert.equal(e.isValid(slow.out.out!), false);
    assert.equal(e.isValid(slow.out.doc!), false, 'no output of the killed build is valid');
    assert.equal(e.isValid(last.out.out!), false);
    const r = e.build(['--sandbox', sandbox, '--print-build-trace', last.drv]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${last.out.out}\n`);
    for (const o of [slow.out.out!, slow.out.doc!, last.out.out!]) assert.equal(e.isValid(o), true);
    assert.equal(fs.readFileSync(slow.out.out!, 'utf8'), 'slow\n');
    assert.equal(traceLines(e.build([last.drv, '--print-build-trace']).stderr).length, 0, 'nothing left to build');
  }
});

/** A DAG with two independent branches; one has a failing derivation under two levels. */
async function failingDag(tag: string, counter: string) {
  const base = await e.drv({ name: `${tag}-base`, cmd: counted(counter, '0') });
  const bad = await e.drv({ name: `${tag}-bad`, inputs: [base], cmd: `${counted(counter, '0')}; exit 7` });
  const aboveBad = await e.drv({ name: `${tag}-above-bad`, inputs: [bad], cmd: counted(counter, '0') });
  const good: Built[] = [];
  for (let i = 0; i < 3; i++) good.push(await e.drv({ name: `${tag}-good-${i}`, inputs: [base, ...good.slice(-1)], cmd: counted(counter, '0.3') }));
  const top = await e.drv({ name: `${tag}-top`, inputs: [aboveBad, good[2]!], cmd: counted(counter, '0') });
  return { base, bad, aboveBad, good, top };
}

test('a failure deep in a DAG: without -k the run stops promptly with exit 100', async () => {
  const counter = path.join(e.dir, 'nok-count');
  const d = await failingDag('nok', counter);
  const t0 = Date.now();
  const r = e.build(['-j', '2', '--print-build-trace', d.top.drv, d.good[2]!.drv]);
  assert.equal(r.code, 100, r.stderr);
  assert.ok(Date.now() - t0 < 5_000);
  assert.equal(r.stdout, '');
  const runs = fs.readFileSync(counter, 'utf8').trim().split('\n');
  assert.ok(!runs.includes('nok-good-2'), `stopped before the end of the good branch: ${runs.join(' ')}`);
  assert.ok(!runs.includes('nok-top') && !runs.includes('nok-above-bad'));
  assert.equal(e.isValid(d.good[2]!.out.out!), false);
  // What needs the failed build is reported as failing with it, in the trace too.
  const dependants = traceLines(r.stderr).filter((l) => l[0] === 'build-failed' && l[1] !== d.bad.drv);
  assert.deepEqual(
    dependants.map((l) => [l[1], l[3], l.slice(4).join(' ')]).sort(),
    [d.aboveBad, d.top].map((x) => [x.drv, '0', `cannot build '${x.drv}': its input '${d.bad.drv}' failed`]).sort(),
  );
});

test('a failure deep in a DAG: with -k every independent branch still builds', async () => {
  const counter = path.join(e.dir, 'k-count');
  const d = await failingDag('k', counter);
  const r = e.build(['-k', '-j', '2', '--print-build-trace', d.top.drv, d.good[2]!.drv]);
  assert.equal(r.code, 100, r.stderr);
  assert.equal(r.stdout, `${d.good[2]!.out.out}\n`, 'the good branch is printed');
  for (const g of d.good) assert.equal(e.isValid(g.out.out!), true);
  assert.equal(e.isValid(d.top.out.out!), false);
  assert.match(r.stderr, /^drover-build: error: cannot build '.*k-top\.drv': its input '.*k-bad\.drv' failed$/m);
  assert.deepEqual(
    traceLines(r.stderr)
      .filter((l) => l[0] === 'build-failed' && l[1] !== d.bad.drv)
      .map((l) => l[1])
      .sort(),
    [d.aboveBad.drv, d.top.drv].sort(),
  );
  const runs = fs.readFileSync(counter, 'utf8').trim().split('\n').sort();
  assert.deepEqual(runs, ['k-bad', 'k-base', 'k-good-0', 'k-good-1', 'k-good-2']);
});

test('SIGINT stops every build at once: exit 1, the builder killed, nothing registered', async () => {
  const marker = path.join(e.dir, 'int-marker');
  const slow = await e.drv({ name: 'interrupted', cmd: `/bin/sleep 2; echo > ${marker}; echo > $out` });
  const p = e.start(['--sandbox', 'none', '--print-build-trace', slow.drv]);
  let stderr = '';
  await new Promise<void>((resolve) => {
    p.child.stderr!.on('data', (c) => {
      stderr += c;
      if (stderr.includes('@ build-started')) resolve();
    });
  });
  const t0 = Date.now();
  p.child.kill('SIGINT');
  const r = await p.result;
  assert.equal(r.code, 1, r.stderr);
  assert.ok(Date.now() - t0 < 3000, 'promptly');
  assert.match(r.stderr, /SIGINT: stopping all builds/);
  await new Promise((res) => setTimeout(res, 2500));
  assert.equal(fs.existsSync(marker), false, 'the builder did not go on');
  assert.equal(e.isValid(slow.out.out!), false);
});

test("drover-build's builder launcher killed from outside: a system error (exit 1, no cached failure), the builder gone too", async () => {
  const marker = path.join(e.dir, 'lost-marker');
  const lost = await e.drv({ name: 'lost', cmd: `/bin/sleep 2; echo > ${marker}; echo > $out` });
  const p = e.start(['--sandbox', 'none', '--cache-failures', '--print-build-trace', lost.drv]);
  let stderr = '';
  await new Promise<void>((resolve) => {
    p.child.stderr!.on('data', (c) => {
      stderr += c;
      if (stderr.includes('@ build-started')) resolve();
    });
  });
  // The launcher is drover-build's `sh -s` child.
  const children = fs.readFileSync(`/proc/${p.child.pid}/task/${p.child.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  const launcher = children.find((c) => fs.readFileSync(`/proc/${c}/cmdline`, 'utf8') === '/bin/sh\0-s\0');
  assert.ok(launcher, `a launcher among ${children}`);
  process.kill(launcher, 'SIGKILL');
  const r = await p.result;
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /build of '.*lost\.drv' was lost: drover-build's builder launcher \(\/bin\/sh\) was killed/);
  await new Promise((res) => setTimeout(res, 2500));
  assert.equal(fs.existsSync(marker), false, 'the builder did not go on');
  assert.equal(e.isValid(lost.out.out!), false);
  const failed = run(STORE_BIN, ['failed', '--list'], { env: e.env });
  assert.equal(failed.code, 0, failed.stderr);
  assert.equal(failed.stdout, '', 'not remembered as a failed build');
});
