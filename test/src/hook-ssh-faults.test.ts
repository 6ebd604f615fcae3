// drover-hook-ssh against broken machines: down, wrong host key, dropped or stalled copies, a killed hook.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Farm, BIN_DIR } from './sshd-harness.js';
import { addBlob, addDrv, allValidLocally, build, buildEnv, farmProcesses, forgetFailures, healthRecords, re, startBuild, validLocally, validOnMachine, waitFor, wrapperDir } from './hook-ssh-helpers.js';

let farm: Farm;

before(async () => {
  farm = await Farm.start({ machines: 2, remoteEnv: { DROVER_NO_SYNC: '1', DROVER_SANDBOX: 'none' } });
});

after(async () => {
  await farm?.close();
});

/** ssh-keygen's fingerprint of a machine's host key (SHA256:…). */
function fingerprint(m: { dir: string }): string {
  return spawnSync('ssh-keygen', ['-lf', path.join(m.dir, 'host_key.pub')], { encoding: 'utf8' }).stdout.split(' ')[1]!;
}

function hookSsh(args: string[], machines: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(path.join(BIN_DIR, 'drover-hook-ssh'), args, { env: buildEnv(farm, { machines }), encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('sshd down: the other machine builds, and the dead one is remembered with back-off', async () => {
  forgetFailures(farm);
  const [m1, m2] = farm.machines as [typeof farm.machines[0], typeof farm.machines[0]];
  // m1 is the faster machine, so it would be chosen first.
  const machines = farm.machinesFile([m1.line({ maxJobs: 1, speedFactor: 4 }), m2.line({ maxJobs: 1 })], 'down-machines');
  await m1.stop();
  try {
    const a = await addDrv(farm, { name: 'while-down-a', cmd: 'echo a > $out' });
    const r = await build(farm, { machines }, [a.drv]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.remote.get(a.drv), m2.uri);
    assert.match(r.stderr, new RegExp(`cannot reach ${m1.uri.replace(/\./g, '\\.')}: ssh: connect to host 127\\.0\\.0\\.1 port ${m1.port}: Connection refused; skipping .* for 10s, trying another machine`));
    // The next hook process does not even try m1: its failure is remembered in the state dir.
    const b = await addDrv(farm, { name: 'while-down-b', cmd: 'echo b > $out' });
    const r2 = await build(farm, { machines }, [b.drv]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(r2.remote.get(b.drv), m2.uri);
    assert.doesNotMatch(r2.stderr, /cannot reach/);
    const st = hookSsh(['status'], machines);
    assert.equal(st.status, 0, st.stderr);
    assert.match(st.stdout, new RegExp(`${m1.uri.replace(/\./g, '\\.')}\\s+\\S+\\s+0/1.*backing off, retry in \\d+s`));
    assert.match(st.stdout, /recent failures:\n {2}ssh:\/\/\S+: 1 in a row, last \d+s ago: cannot reach .*Connection refused/);
    const ck = hookSsh(['check'], machines);
    assert.equal(ck.status, 1);
    assert.match(ck.stdout, /login {6}FAILED: ssh: connect to host .*Connection refused/);
    assert.match(ck.stdout, new RegExp(`${m2.uri.replace(/\./g, '\\.')}: ok\\n  login {6}ok .*\\n  store dir  ok: ${farm.storeDir}\\n  drover .*drover-hook-ssh.*\\n  session    ok .*\\n  free disk  [0-9.]+ GiB`));
  } finally {
    await m1.start();
  }
});

test('every fitting machine unreachable: decline with ssh\'s own errors; all busy: postpone, said once', async () => {
  forgetFailures(farm);
  const [m1, m2] = farm.machines as [typeof farm.machines[0], typeof farm.machines[0]];
  const machines = farm.machinesFile([m1.line({ maxJobs: 1 }), m2.line({ maxJobs: 1 })], 'all-down-machines');
  await m1.stop();
  await m2.stop();
  try {
    const a = await addDrv(farm, { name: 'nowhere', cmd: 'echo a > $out' });
    const r = await build(farm, { machines }, [a.drv]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /every machine that can build '.*nowhere\.drv' is unreachable:\n {2}cannot reach ssh:\/\/\S+: .*Connection refused\n {2}cannot reach ssh:\/\/\S+: .*Connection refused/);
    // In back-off now: the message says so instead of costing another connection attempt.
    const r2 = await build(farm, { machines }, [a.drv]);
    assert.match(r2.stderr, /is unreachable:\n {2}ssh:\/\/\S+: failed 1 time in a row, next try in \d+s; last error: cannot reach .*Connection refused/);
  } finally {
    await m1.start();
    await m2.start();
    forgetFailures(farm);
  }
  // Busy: one slot, two long builds, no local slot: the second waits (postpone), said once.
  const busyMachines = farm.machinesFile([m1.line({ maxJobs: 1 })], 'busy-machines');
  const x = await addDrv(farm, { name: 'busy-x', cmd: '/bin/sleep 1; echo x > $out' });
  const y = await addDrv(farm, { name: 'busy-y', cmd: '/bin/sleep 1; echo y > $out' });
  const r3 = await build(farm, { machines: busyMachines }, [x.drv, y.drv]);
  assert.equal(r3.code, 0, r3.stderr);
  assert.equal([...r3.stderr.matchAll(/all machines that can build '.*' are busy \(ssh:\/\/\S+ 1\/1\); waiting for a free slot/g)].length, 1);
});

test('a wrong host key is refused with a clear error, by the hook and by check: the short reason and the line that pins the key', async () => {
  forgetFailures(farm);
  const [m1, m2] = farm.machines as [typeof farm.machines[0], typeof farm.machines[0]];
  const machines = farm.machinesFile(['# the farm', m1.line({ maxJobs: 1, hostKeyBase64: m2.hostKeyBase64 })], 'wrong-key-machines');
  const a = await addDrv(farm, { name: 'wrong-key', cmd: 'echo a > $out' });
  const r = await build(farm, { machines }, [a.drv]);
  assert.notEqual(r.code, 0);
  const reason =
    `Host key verification failed: the host key pinned in field 8 (HOST_KEY_BASE64) of line 2 of the machines file '${machines}' ` +
    `(${fingerprint(m2)}) does not match the ED25519 key ${fingerprint(m1)} that the host presents`;
  assert.match(r.stderr, new RegExp(`cannot reach ${re(m1.uri)}: ${re(reason)}; skipping`));
  // Nothing of ssh's banner, which tells the user to edit a known_hosts file the hook rewrites on every call.
  assert.doesNotMatch(r.stderr, /REMOTE HOST IDENTIFICATION|known_hosts|@@@/);
  assert.deepEqual(validOnMachine(m1, [a.drv]), [], 'nothing was sent to the impostor');
  forgetFailures(farm);
  const ck = hookSsh(['check'], machines);
  assert.equal(ck.status, 1);
  assert.match(ck.stdout, new RegExp(`^  login {6}FAILED: ${re(reason)}$`, 'm'));
  assert.doesNotMatch(ck.stdout, /REMOTE HOST IDENTIFICATION|known_hosts|@@@/);
});

test('an SSH key file that is missing is named with its machines file line, before connecting: skipped without back-off, FAILED in check', async () => {
  forgetFailures(farm);
  const [m1, m2] = farm.machines as [typeof farm.machines[0], typeof farm.machines[0]];
  const missing = path.join(farm.dir, 'no-such-key');
  const machines = farm.machinesFile([m1.line({ maxJobs: 1, speedFactor: 4, sshKey: missing }), m2.line({ maxJobs: 1 })], 'missing-key-machines');
  const reason = `the SSH key '${missing}' named on line 1 of the machines file '${machines}' is not readable: no such file`;
  const a = await addDrv(farm, { name: 'missing-key', cmd: 'echo a > $out' });
  const r = await build(farm, { machines }, [a.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.remote.get(a.drv), m2.uri, 'the machine with a usable key built it');
  assert.match(r.stderr, new RegExp(`${re(reason)}; skipping ${re(m1.uri)}, trying another machine`));
  assert.doesNotMatch(r.stderr, /Permission denied/);
  // A mistake on this side: nothing to back off from, a fixed file counts at once.
  assert.deepEqual(healthRecords(farm), {});
  const ck = hookSsh(['check'], machines);
  assert.equal(ck.status, 1);
  assert.match(ck.stdout, new RegExp(`^${re(m1.uri)}: FAILED\\n  login {6}FAILED: ${re(reason)}$`, 'm'));
  assert.match(ck.stdout, new RegExp(`^${re(m2.uri)}: ok$`, 'm'));

  // A key that goes away after a build is refused although the shared connection and the
  // agent it reached are still up: the build fails (exit 1) saying why.
  const key = path.join(farm.dir, 'vanishing-key');
  fs.copyFileSync(farm.userKey, key);
  fs.chmodSync(key, 0o600);
  const one = farm.machinesFile([m1.line({ maxJobs: 1, sshKey: key })], 'vanishing-key-machines');
  const b = await addDrv(farm, { name: 'key-there', cmd: 'echo b > $out' });
  assert.equal((await build(farm, { machines: one }, [b.drv])).code, 0);
  fs.rmSync(key);
  const c = await addDrv(farm, { name: 'key-gone', cmd: 'echo c > $out' });
  const r2 = await build(farm, { machines: one }, [c.drv]);
  assert.equal(r2.code, 1, r2.stderr);
  assert.match(r2.stderr, new RegExp(`every machine that can build '${re(c.drv)}' is unreachable:\\n  ${re(m1.uri)}: the SSH key '${re(key)}' named on line 1 of the machines file '${re(one)}' is not readable: no such file`));
  assert.deepEqual(validLocally(farm, [c.out]), []);
  assert.deepEqual(healthRecords(farm), {});
});

test('a machine with MAX_JOBS 0 is out of service: check skips it (exit 0), status says so', async () => {
  forgetFailures(farm);
  const m2 = farm.machines[1]!;
  // Out of service and down (nothing listens on port 1): check must not even try it.
  const machines = farm.machinesFile([`ssh://root@127.0.0.1:1 ${farm.system} - 0`, m2.line({ maxJobs: 1 })], 'out-of-service-machines');
  const ck = hookSsh(['check'], machines);
  assert.equal(ck.status, 0, ck.stdout + ck.stderr);
  assert.match(ck.stdout, /^ssh:\/\/root@127\.0\.0\.1:1: out of service \(max jobs 0\)$/m);
  assert.match(ck.stdout, new RegExp(`^${re(m2.uri)}: ok$`, 'm'));
  assert.doesNotMatch(ck.stdout, /Connection refused/);
  const st = hookSsh(['status'], machines);
  assert.equal(st.status, 0, st.stderr);
  assert.match(st.stdout, /^ssh:\/\/root@127\.0\.0\.1:1 +\S+ +- +1 +- +out of service \(max jobs 0\)$/m);
  assert.match(st.stdout, new RegExp(`^${re(m2.uri)} +\\S+ +0/1 +1 +- +ok$`, 'm'));
});

test('the remote store dir must equal ours: the machine is refused with a clear message', async () => {
  forgetFailures(farm);
  const m2 = farm.machines[1]!;
  await m2.stop();
  m2.extraEnv = { DROVER_STORE_DIR: '/somewhere/else/store' };
  await m2.start();
  try {
    const machines = farm.machinesFile([m2.line({ maxJobs: 1 })], 'storedir-machines');
    const ck = hookSsh(['check'], machines);
    assert.equal(ck.status, 1);
    assert.match(ck.stdout, new RegExp(`uses the store dir '/somewhere/else/store', not '${farm.storeDir}'`));
    const a = await addDrv(farm, { name: 'other-store', cmd: 'echo a > $out' });
    const r = await build(farm, { machines }, [a.drv]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /uses the store dir '\/somewhere\/else\/store'.*set DROVER_STORE_DIR on the remote/);
  } finally {
    await m2.stop();
    m2.extraEnv = {};
    await m2.start();
    forgetFailures(farm);
  }
});

test('connection killed mid-copy: hook-failed, and no partial path registered anywhere', async () => {
  forgetFailures(farm);
  const m1 = farm.machines[0]!;
  // The remote serve takes eight reads (its header, then up to 512 KiB of the stream), then
  // stops reading: the copy is in flight when we cut it.
  const slow = wrapperDir(farm, 'slow-import', 'drover-hook-ssh', 'serve', '{ /bin/dd bs=65536 count=8 2>/dev/null; /bin/sleep 4; /bin/cat; } | "$REAL" "$@"; exit $?');
  const machines = farm.machinesFile([m1.line({ maxJobs: 1, uriOptions: { 'remote-program': slow, agent: '0' } })], 'cut-machines');
  const blob = await addBlob(farm, 'cut-blob', 4 * 1024 * 1024, 11);
  const a = await addDrv(farm, { name: 'cut', cmd: `/bin/cat ${blob} > $out`, srcs: [blob] });
  const before = allValidLocally(farm);
  const run = startBuild(farm, { machines }, [a.drv]);
  await waitFor(() => m1.processes().some((p) => p.cmd.includes('/bin/sleep 4')), 20000, 'the remote import to stall');
  assert.ok(m1.killSessions() > 0);
  const r = await run.result;
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /@ hook-failed .*cut\.drv/);
  assert.match(r.stderr, /building '.*cut\.drv' on ssh:\/\/\S+ failed: the connection dropped while copying 2 paths to it \(after [0-9.]+ MiB of 4\.0 MiB\)/);
  assert.deepEqual(allValidLocally(farm), before, 'the local store is unchanged');
  assert.deepEqual(validOnMachine(m1, [blob, a.drv, a.out]), [], 'nothing half-copied is valid on the remote');
  // The cut-off import sees its stream end early and removes its temporary copy.
  await waitFor(() => !m1.processes().some((p) => /drover-hook-ssh(\.js)? serve/.test(p.cmd)), 15000, 'the remote import to end');
  assert.deepEqual(m1.storeEntries().filter((e) => e.startsWith('.drover-tmp')), [], 'the remote import cleaned up its temporary copy');
  assert.deepEqual(validOnMachine(m1, [blob, a.drv, a.out]), []);
});

for (const engine of ['drover', 'drover-cli']) {
  test(`a stalled copy is detected and ends as a hook failure instead of hanging (engine ${engine})`, async () => {
    forgetFailures(farm);
    const m1 = farm.machines[0]!;
    // The remote import stops reading for 8 s: far longer than the stall limit of 2 s.
    const [tool, sub] = engine === 'drover' ? ['drover-hook-ssh', 'serve'] : ['drover-store', 'import'];
    // A few reads (the first carries serve's session header), then nothing for 8 s.
    const slow = wrapperDir(farm, `stalled-${engine}`, tool, sub, `{ /bin/dd bs=65536 count=3 2>/dev/null; /bin/sleep 8; /bin/cat; } | "$REAL" "$@"; exit $?`);
    const machines = farm.machinesFile([m1.line({ maxJobs: 1, uriOptions: { 'remote-program': slow, 'stall-timeout': '2', engine, agent: '0' } })], `stall-${engine}-machines`);
    const blob = await addBlob(farm, `stall-blob-${engine}`, 4 * 1024 * 1024, engine.length);
    const a = await addDrv(farm, { name: `stall-${engine}`, cmd: `/bin/cat ${blob} > $out`, srcs: [blob] });
    const t0 = Date.now();
    const r = await build(farm, { machines }, [a.drv]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /copying 2 paths to it stalled: nothing moved for 2s/);
    assert.ok(Date.now() - t0 < 8000, 'before the remote would have gone on');
    // Once it reads again, the remote import finds its connection gone and leaves nothing behind.
    await waitFor(() => !m1.processes().some((p) => /drover-store(\.js)? import|drover-hook-ssh(\.js)? serve/.test(p.cmd)), 20000, 'the stalled remote import to be gone');
    assert.deepEqual(validOnMachine(m1, [blob]), []);
    assert.deepEqual(m1.storeEntries().filter((e) => e.startsWith('.drover-tmp')), []);
  });
}

test('a local input whose contents no longer match its hash is refused before the remote registers it (agent and drover-cli)', async () => {
  forgetFailures(farm);
  const m1 = farm.machines[0]!;
  for (const engine of ['drover', 'drover-cli']) {
    const blob = await addBlob(farm, `rotten-${engine}`, 300_000, 40 + engine.length);
    const a = await addDrv(farm, { name: `rotten-${engine}`, cmd: `/bin/cat ${blob} > $out`, srcs: [blob] });
    // One byte flipped on disk, the size unchanged: only a hash sees it.
    fs.chmodSync(blob, 0o644);
    const fd = fs.openSync(blob, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, 1000);
    b[0] = b[0]! ^ 0xff;
    fs.writeSync(fd, b, 0, 1, 1000);
    fs.closeSync(fd);
    fs.chmodSync(blob, 0o444);
    const machines = farm.machinesFile([m1.line({ maxJobs: 1, uriOptions: { engine } })], `rotten-${engine}-machines`);
    const r = await build(farm, { machines }, [a.drv]);
    assert.equal(r.code, 1, r.stderr);
    if (engine === 'drover') {
      // The hook sent the DB's hash along and did not hash the stream itself: the agent did.
      assert.match(r.stderr, new RegExp(`the export stream from the hook: the contents of '${blob}' hash to 'sha256:[0-9a-z]{52}', not 'sha256:[0-9a-z]{52}' as the hook's store says; nothing was registered`));
    } else {
      assert.match(r.stderr, new RegExp(`hash of path '${blob}' has changed from`));
    }
    assert.deepEqual(validOnMachine(m1, [blob, a.drv]), [], 'nothing of the copy is valid on the remote');
    assert.deepEqual(m1.storeEntries().filter((e) => e.startsWith('.drover-tmp')), [], 'no temporary copy left behind');
  }
});

test('hook killed with SIGKILL: its slot frees and the remote builder is gone within seconds', async () => {
  forgetFailures(farm);
  const m2 = farm.machines[1]!;
  const machines = farm.machinesFile([m2.line({ maxJobs: 1 })], 'kill-machines');
  const a = await addDrv(farm, { name: 'long', cmd: 'echo started; /bin/sleep 120; echo x > $out' });
  const run = startBuild(farm, { machines }, [a.drv]);
  await waitFor(() => m2.processes().some((p) => p.cmd.includes('/bin/sleep 120')), 20000, 'the remote builder to run');
  const busy = hookSsh(['status'], machines);
  assert.match(busy.stdout, /slots in use:\n {2}ssh:\/\/\S+ slot 0: pid \d+ building .*long\.drv/);
  const hooks = farmProcesses(farm, 'drover-hook-ssh');
  assert.equal(hooks.length, 1, 'one hook process is building');
  process.kill(hooks[0]!, 'SIGKILL');
  const r = await run.result;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /@ hook-failed .*long\.drv/);
  const st = hookSsh(['status'], machines);
  assert.match(st.stdout, /0\/1/);
  assert.match(st.stdout, /slots in use: none/);
  const t0 = Date.now();
  await waitFor(() => !m2.processes().some((p) => p.cmd.includes('/bin/sleep 120') || p.cmd.includes('drover-build')), 10000, 'the remote build to be killed');
  assert.ok(Date.now() - t0 < 10000);
});

test('through the agent: a connection that drops mid-build ends as hook-failed, and the remote build dies with it', async () => {
  forgetFailures(farm);
  const m2 = farm.machines[1]!;
  const machines = farm.machinesFile([m2.line({ maxJobs: 1 })], 'drop-machines');
  const a = await addDrv(farm, { name: 'dropped', cmd: 'echo started; /bin/sleep 110; echo x > $out' });
  const run = startBuild(farm, { machines }, [a.drv]);
  await waitFor(() => m2.processes().some((p) => p.cmd.includes('/bin/sleep 110')), 20000, 'the remote builder to run');
  assert.ok(m2.processes().some((p) => /drover-hook-ssh(\.js)? agent/.test(p.cmd)), 'the build runs in the agent');
  assert.ok(m2.killSessions() > 0);
  const r = await run.result;
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /failed: the connection dropped during the build: the connection to the drover agent closed/);
  await waitFor(() => !m2.processes().some((p) => p.cmd.includes('/bin/sleep 110')), 10000, 'the remote build to be killed');
  assert.deepEqual(validLocally(farm, [a.out]), []);
});

test('an agent that died is started again by the next build', async () => {
  forgetFailures(farm);
  const m2 = farm.machines[1]!;
  const machines = farm.machinesFile([m2.line({ maxJobs: 1 })], 'agent-machines');
  const a = await addDrv(farm, { name: 'agent-a', cmd: 'echo a > $out' });
  assert.equal((await build(farm, { machines }, [a.drv])).code, 0);
  const agents = m2.processes().filter((p) => /drover-hook-ssh(\.js)? agent --socket/.test(p.cmd));
  assert.equal(agents.length, 1, 'one agent per machine');
  process.kill(agents[0]!.pid, 'SIGKILL');
  const b = await addDrv(farm, { name: 'agent-b', cmd: 'echo b > $out' });
  const r = await build(farm, { machines }, [b.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /opened a session \(\S+ \(drover agent\)\)/);
  const again = m2.processes().filter((p) => /drover-hook-ssh(\.js)? agent --socket/.test(p.cmd));
  assert.equal(again.length, 1);
  assert.notEqual(again[0]!.pid, agents[0]!.pid);
});

test('hostile remotes: garbage answers and a lying export stream are refused, the local store unchanged', async () => {
  forgetFailures(farm);
  const m1 = farm.machines[0]!;
  // A remote whose missing-paths query answers garbage.
  const garbage = wrapperDir(farm, 'garbage-query', 'drover-store', 'query', 'echo "hello from a confused remote"; exit 0');
  const g = farm.machinesFile([m1.line({ maxJobs: 1, uriOptions: { 'remote-program': garbage, engine: 'drover-cli' } })], 'garbage-machines');
  const a = await addDrv(farm, { name: 'garbage', cmd: 'echo a > $out' });
  const before = allValidLocally(farm);
  const r = await build(farm, { machines: g }, [a.drv]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /answered the missing-paths query with 'hello from a confused remote', which is not a store path in /);
  assert.deepEqual(allValidLocally(farm), before);

  // A serve that answers garbage.
  forgetFailures(farm);
  const babble = wrapperDir(farm, 'garbage-serve', 'drover-hook-ssh', 'serve', 'echo "Welcome! Today is a fine day."; /bin/cat >/dev/null; exit 0');
  const bb = farm.machinesFile([m1.line({ maxJobs: 1, uriOptions: { 'remote-program': babble, agent: '0' } })], 'babble-machines');
  const s = await addDrv(farm, { name: 'babble', cmd: 'echo s > $out' });
  const rs = await build(farm, { machines: bb }, [s.drv]);
  assert.equal(rs.code, 1, rs.stderr);
  assert.match(rs.stderr, /\(drover-hook-ssh serve\): 'Welcome! Today is a fine day\..*' is not a session frame \(is something else printing on the remote's stdout\?\)/);

  // A remote whose export stream is not an export stream.
  forgetFailures(farm);
  const noise = wrapperDir(farm, 'garbage-export', 'drover-store', 'export', 'echo "this is not a nix export stream at all, not at all"; exit 0');
  const n = farm.machinesFile([m1.line({ maxJobs: 1, uriOptions: { 'remote-program': noise, engine: 'drover-cli' } })], 'noise-machines');
  const b = await addDrv(farm, { name: 'noise', cmd: 'echo b > $out' });
  const r2 = await build(farm, { machines: n }, [b.drv]);
  assert.equal(r2.code, 1, r2.stderr);
  assert.match(r2.stderr, /failed: the output stream from ssh:\/\/\S+: at byte 0: .*; nothing was registered/);
  assert.deepEqual(validOnMachine(m1, [b.out]), [b.out], 'the remote did build it');
  assert.deepEqual(validLocally(farm, [b.out]), [], 'nothing of the bad stream was registered');

  // A remote that slips a path of its own into the stream of outputs.
  forgetFailures(farm);
  const planted = m1.run([path.join(BIN_DIR, 'drover-store'), 'add', '/etc/hostname']).stdout.trim();
  assert.match(planted, /-hostname$/);
  const liar = wrapperDir(farm, 'lying-export', 'drover-store', 'export', `exec "$REAL" "$@" ${planted}`);
  const l = farm.machinesFile([m1.line({ maxJobs: 1, uriOptions: { 'remote-program': liar, engine: 'drover-cli' } })], 'liar-machines');
  const c = await addDrv(farm, { name: 'liar', cmd: 'echo c > $out' });
  const before2 = allValidLocally(farm);
  const r3 = await build(farm, { machines: l }, [c.drv]);
  assert.equal(r3.code, 1, r3.stderr);
  assert.match(r3.stderr, new RegExp(`holds '${planted}', which is not an output of this build; nothing was registered`));
  assert.deepEqual(allValidLocally(farm), before2, 'neither the planted path nor the output landed');
  assert.ok(!fs.existsSync(planted), 'no trace of the planted path on disk');
});
