// drover-hook-ssh through the real drover-build against real sshd machines: spreading, routing, slots, copies.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Farm } from './sshd-harness.js';
import { addBlob, addDrv, build, startBuild, validLocally, validOnMachine, type Drv } from './hook-ssh-helpers.js';

let farm: Farm;

before(async () => {
  farm = await Farm.start({ machines: 2, remoteEnv: { DROVER_NO_SYNC: '1', DROVER_SANDBOX: 'none' } });
});

after(async () => {
  await farm?.close();
});

test('a DAG spreads over two machines and the local one, and the result is right', async () => {
  const [m1, m2] = farm.machines as [typeof farm.machines[0], typeof farm.machines[0]];
  const machines = farm.machinesFile([m1.line({ maxJobs: 1 }), m2.line({ maxJobs: 1 })], 'dag-machines');
  const leaves: Drv[] = [];
  for (let i = 0; i < 4; i++) {
    leaves.push(await addDrv(farm, { name: `leaf-${i}`, cmd: `echo leaf ${i}; /bin/sleep 1.5; echo leaf-${i} > $out` }));
  }
  const root = await addDrv(farm, {
    name: 'root',
    cmd: `/bin/cat ${leaves.map((l) => l.out).join(' ')} > $out`,
    inputs: leaves,
  });
  const r = await build(farm, { machines, jobs: 1 }, [root.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), root.out);
  assert.equal(fs.readFileSync(root.out, 'utf8'), leaves.map((_, i) => `leaf-${i}\n`).join(''));
  const hosts = new Set([...leaves, root].map((d) => r.remote.get(d.drv) ?? 'local'));
  assert.ok(hosts.has(m1.uri), `m1 built something: ${[...hosts]}`);
  assert.ok(hosts.has(m2.uri), `m2 built something: ${[...hosts]}`);
  assert.ok(hosts.has('local'), `the local machine built something: ${[...hosts]}`);
  // What a machine built is in its own store and (copied back) in the local one, registered.
  for (const d of [...leaves, root]) {
    const host = r.remote.get(d.drv);
    assert.deepEqual(validLocally(farm, [d.out]), [d.out]);
    if (host === m1.uri) assert.deepEqual(validOnMachine(m1, [d.out]), [d.out]);
    if (host === m2.uri) assert.deepEqual(validOnMachine(m2, [d.out]), [d.out]);
  }
  // The builder's log came through fd 4 into drover-build's log of the derivation.
  const remoteLeaf = leaves.find((l) => r.remote.has(l.drv))!;
  const log = fs.readdirSync(`${farm.stateDir}/log/drvs`, { recursive: true }).map(String).find((f) => f.endsWith(remoteLeaf.drv.slice(remoteLeaf.drv.lastIndexOf('/') + 3)));
  assert.ok(log, 'a log file for the remote leaf');
  assert.match(fs.readFileSync(`${farm.stateDir}/log/drvs/${log}`, 'utf8'), /^leaf \d\n/);
});

test('features and mandatory features route each derivation to the machine that takes it', async () => {
  const [m1, m2] = farm.machines as [typeof farm.machines[0], typeof farm.machines[0]];
  const machines = farm.machinesFile(
    [m1.line({ maxJobs: 2, supportedFeatures: ['kvm'] }), m2.line({ maxJobs: 2, mandatoryFeatures: ['benchmark'] })],
    'features-machines',
  );
  const kvm = await addDrv(farm, { name: 'needs-kvm', cmd: 'echo kvm > $out', features: ['kvm'] });
  const bench = await addDrv(farm, { name: 'needs-benchmark', cmd: 'echo bench > $out', features: ['benchmark'] });
  const plain = await addDrv(farm, { name: 'plain', cmd: 'echo plain > $out' });
  const r = await build(farm, { machines }, [kvm.drv, bench.drv, plain.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.remote.get(kvm.drv), m1.uri);
  assert.equal(r.remote.get(bench.drv), m2.uri, 'the mandatory feature is served by the machine that demands it');
  assert.equal(r.remote.get(plain.drv), m1.uri, 'a machine with a mandatory feature takes nothing else');

  const gpu = await addDrv(farm, { name: 'needs-gpu', cmd: 'echo gpu > $out', features: ['gpu'] });
  const r2 = await build(farm, { machines }, [gpu.drv]);
  assert.notEqual(r2.code, 0);
  assert.match(r2.stderr, /drover-hook-ssh: no machine can build '.*needs-gpu.drv' \(system \S+, features gpu\)/);
  assert.match(r2.stderr, new RegExp(`${m1.uri.replace(/[.]/g, '\\.')}\\s+\\S+\\s+2\\s+kvm\\s+-\\s+lacks gpu`));
  assert.deepEqual(validLocally(farm, [gpu.out]), []);
});

test('a build that fails on the remote ends as a build failure: exit 100, @ build-failed', async () => {
  const machines = farm.machinesFile([farm.machines[0]!.line({ maxJobs: 1 })], 'fail-machines');
  const bad = await addDrv(farm, { name: 'bad', cmd: 'echo about to fail; exit 3' });
  const r = await build(farm, { machines }, [bad.drv]);
  assert.equal(r.code, 100, r.stderr);
  assert.match(r.stderr, /^@ build-failed .*bad\.drv/m);
  assert.doesNotMatch(r.stderr, /@ hook-failed/);
  assert.match(r.stderr, /building '.*bad\.drv' on ssh:\/\/\S+ failed \(status 100\)/);
  assert.match(r.stderr, /about to fail/, 'the remote log reaches the user');
  assert.deepEqual(validLocally(farm, [bad.out]), []);
});

test('only the paths the remote lacks are sent (bytes counted)', async () => {
  const m1 = farm.machines[0]!;
  const machines = farm.machinesFile([m1.line({ maxJobs: 1 })], 'copy-machines');
  const blob = await addBlob(farm, 'blob', 3 * 1024 * 1024, 7);
  const a = await addDrv(farm, { name: 'use-blob-a', cmd: `/bin/cat ${blob} | /usr/bin/wc -c > $out`, srcs: [blob] });
  const b = await addDrv(farm, { name: 'use-blob-b', cmd: `/usr/bin/head -c 10 ${blob} | /usr/bin/wc -c > $out`, srcs: [blob] });
  const uploaded = (stderr: string) => [...stderr.matchAll(/uploaded (\d+) paths, (\d+) bytes/g)].map((x) => ({ paths: Number(x[1]), bytes: Number(x[2]) }));
  const r1 = await build(farm, { machines }, [a.drv]);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(fs.readFileSync(a.out, 'utf8').trim(), String(3 * 1024 * 1024));
  const u1 = uploaded(r1.stderr);
  assert.equal(u1.length, 1);
  assert.equal(u1[0]!.paths, 2, 'the blob and the .drv');
  assert.ok(u1[0]!.bytes > 3 * 1024 * 1024, `the blob travelled: ${u1[0]!.bytes}`);
  assert.match(r1.stderr, /copying 2 paths \(3\.0 MiB\) to ssh:/, 'upload progress is shown');
  const r2 = await build(farm, { machines }, [b.drv]);
  assert.equal(r2.code, 0, r2.stderr);
  const u2 = uploaded(r2.stderr);
  assert.equal(u2[0]!.paths, 1, 'only the .drv: the blob is there already');
  assert.ok(u2[0]!.bytes < 4096, `only the .drv travelled: ${u2[0]!.bytes}`);
  assert.deepEqual(validOnMachine(m1, [blob, a.drv, b.drv, a.out, b.out]), [blob, a.drv, b.drv, a.out, b.out]);
});

test('engine=drover-cli: the remote steps as separate drover-store / drover-build commands', async () => {
  const m2 = farm.machines[1]!;
  const machines = farm.machinesFile([m2.line({ maxJobs: 1, uriOptions: { engine: 'drover-cli' } })], 'cli-machines');
  const dep = await addDrv(farm, { name: 'cli-dep', cmd: 'echo "cli log line"; echo dep > $out' });
  const top = await addDrv(farm, { name: 'cli-top', cmd: `/bin/cat ${dep.out} > $out; echo top >> $out`, inputs: [dep] });
  const r = await build(farm, { machines }, [top.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.remote.get(top.drv), m2.uri);
  assert.equal(fs.readFileSync(top.out, 'utf8'), 'dep\ntop\n');
  assert.match(r.stderr, /asked ssh:\/\/\S+ which of \d+ inputs it lacks/);
  const log = fs.readdirSync(`${farm.stateDir}/log/drvs`, { recursive: true }).map(String).find((f) => f.endsWith('-cli-dep.drv'));
  assert.equal(fs.readFileSync(`${farm.stateDir}/log/drvs/${log}`, 'utf8'), 'cli log line\n', 'the raw log, without drover-build -L\'s prefix');
  const bad = await addDrv(farm, { name: 'cli-bad', cmd: 'exit 2' });
  const r2 = await build(farm, { machines }, [bad.drv]);
  assert.equal(r2.code, 100, r2.stderr);
});

test('max-jobs is never exceeded with two drover-build processes at once (the remote records concurrency)', async () => {
  const m2 = farm.machines[1]!;
  const machines = farm.machinesFile([m2.line({ maxJobs: 2 })], 'slots-machines');
  const drvs: Drv[] = [];
  for (let i = 0; i < 6; i++) {
    drvs.push(await addDrv(farm, { name: `slot-${i}`, cmd: `s=$(/bin/date +%s.%N); /bin/sleep 1; e=$(/bin/date +%s.%N); echo "$s $e" > $out` }));
  }
  const one = startBuild(farm, { machines }, drvs.slice(0, 3).map((d) => d.drv));
  const two = startBuild(farm, { machines }, drvs.slice(3).map((d) => d.drv));
  const [r1, r2] = await Promise.all([one.result, two.result]);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r2.code, 0, r2.stderr);
  const spans = drvs.map((d) => fs.readFileSync(d.out, 'utf8').trim().split(' ').map(Number) as [number, number]);
  let most = 0;
  for (const [s] of spans) most = Math.max(most, spans.filter(([a, b]) => a <= s && s < b).length);
  assert.ok(most <= 2, `at most 2 builds at once on a max-jobs 2 machine, saw ${most}`);
  assert.equal(most, 2, 'both slots were used');
  for (const d of drvs) assert.equal(r1.remote.get(d.drv) ?? r2.remote.get(d.drv), m2.uri);
});

test('one host on two lines (default engine and engine=drover-cli): two machines with their own slots; the same URI twice is refused', async () => {
  const m1 = farm.machines[0]!;
  const machines = farm.machinesFile([m1.line({ maxJobs: 1 }), m1.line({ maxJobs: 1, uriOptions: { engine: 'drover-cli' } })], 'two-lines-machines');
  const drvs: Drv[] = [];
  for (let i = 0; i < 2; i++) {
    drvs.push(await addDrv(farm, { name: `two-lines-${i}`, cmd: `s=$(/bin/date +%s.%N); /bin/sleep 2; e=$(/bin/date +%s.%N); echo "$s $e" > $out` }));
  }
  const r = await build(farm, { machines, jobs: 0 }, drvs.map((d) => d.drv));
  assert.equal(r.code, 0, r.stderr);
  for (const d of drvs) assert.equal(r.remote.get(d.drv), m1.uri);
  // One build through a session, one through drover-cli's steps: each line took its one slot.
  assert.match(r.stderr, /opened a session/);
  assert.match(r.stderr, /asked ssh:\/\/\S+ which of \d+ inputs it lacks/);
  const [[s0, e0], [s1, e1]] = drvs.map((d) => fs.readFileSync(d.out, 'utf8').trim().split(' ').map(Number) as [number, number]) as [[number, number], [number, number]];
  assert.ok(s0 < e1 && s1 < e0, `the two builds ran at once, one per line: ${s0}-${e0}, ${s1}-${e1}`);

  const dup = farm.machinesFile(['# farm', m1.line({ maxJobs: 1, uriOptions: { engine: 'nix' } }), m1.line({ maxJobs: 2, systems: 'aarch64-linux', uriOptions: { engine: 'nix' } })], 'dup-machines');
  const bad = await addDrv(farm, { name: 'dup-uri', cmd: 'echo x > $out' });
  const r2 = await build(farm, { machines: dup }, [bad.drv]);
  assert.notEqual(r2.code, 0);
  assert.match(r2.stderr, new RegExp(`drover-hook-ssh: error: machines file '${dup}', line 3, field 1 \\(URI\\): '${m1.uri.replace(/\./g, '\\.')}\\?engine=nix' is already the URI of line 2; list all of a machine's systems and features on one line`));
});
