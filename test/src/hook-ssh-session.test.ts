// drover-hook-ssh against remote ends that do not hold a session: garbage, another protocol version, a hello that is not one, silence, garbage later in a session, an agent socket that answers garbage.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Farm, sh } from './sshd-harness.js';
import { addDrv, forgetFailures, frame, healthRecords, hookBuild, hookCommand, re, wrapperDir } from './hook-ssh-helpers.js';

let farm: Farm;

before(async () => {
  farm = await Farm.start({ machines: 1, remoteEnv: { DROVER_NO_SYNC: '1', DROVER_SANDBOX: 'none' } });
});

after(async () => {
  await farm?.close();
});

const BAD_SERVES: { name: string; answer: Buffer; says: string }[] = [
  { name: 'garbage', answer: Buffer.from('hello world\n'), says: `'hello world?' is not a session frame (is something else printing on the remote's stdout?)` },
  { name: 'v1', answer: frame('H', JSON.stringify({ v: 1, storeDir: '/tmp/xx/abcd' })), says: 'speaks session protocol 1, this hook speaks 2; install the same drover version on both machines' },
  { name: 'not-json', answer: frame('H', '{xyz}'), says: `its hello '{xyz}' is not JSON` },
  { name: 'null', answer: frame('H', 'null'), says: 'its hello null is not a JSON object' },
];

/** A hook build on the first machine, whose `serve` answers `bytes` and leaves a second later; failures forgotten first. */
async function buildWithServe(name: string, bytes: string | Buffer) {
  forgetFailures(farm);
  const m = farm.machines[0]!;
  const answer = path.join(farm.dir, `answer-${name}`);
  fs.writeFileSync(answer, bytes);
  const wrapper = wrapperDir(farm, `serve-${name}`, 'drover-hook-ssh', 'serve', `/bin/cat ${answer}; /bin/sleep 1; exit 0`);
  const machines = farm.machinesFile([m.line({ maxJobs: 1, uriOptions: { 'remote-program': wrapper, agent: '0' } })], `serve-${name}-machines`);
  const d = await addDrv(farm, { name: `serve-${name}`, cmd: 'echo x > $out' });
  return { m, machines, d, wrapper, r: hookBuild(farm, machines, d) };
}

for (const bad of BAD_SERVES) {
  test(`a serve that answers ${bad.name}: exit 1 naming the derivation, the machine and what failed; the machine backs off; check says FAILED`, async () => {
    const { m, machines, d, wrapper, r } = await buildWithServe(bad.name, bad.answer);
    assert.equal(r.status, 1, r.stderr);
    const says = `${m.uri} (drover-hook-ssh serve): ${bad.says}`;
    assert.match(r.stderr, new RegExp(`^drover-hook-ssh: error: building '${re(d.drv)}' on ${re(m.uri)} failed: ${re(says)}$`, 'm'));

    // Remembered like any remote failure: the next hooks skip the machine for a while.
    const records = Object.values(healthRecords(farm));
    assert.equal(records.length, 1, JSON.stringify(records));
    assert.equal(records[0]!.failures, 1);
    assert.equal(records[0]!.lastError, says);
    const st = hookCommand(farm, ['status'], machines);
    assert.equal(st.status, 0, st.stderr);
    assert.match(st.stdout, new RegExp(`${re(m.uri)}\\s+\\S+\\s+0/1\\s.*backing off, retry in \\d+s`));
    assert.match(st.stdout, new RegExp(`recent failures:\\n  ${re(m.uri)}: 1 in a row, last \\d+s ago: ${re(says)}`));

    // check opens a session too, so it sees what a build would meet.
    forgetFailures(farm);
    const ck = hookCommand(farm, ['check'], machines);
    assert.equal(ck.status, 1, ck.stdout + ck.stderr);
    assert.match(ck.stdout, new RegExp(`^${re(m.uri)}: FAILED\\n  login      ok .*\\n  store dir  ok: ${re(farm.storeDir)}\\n  drover     ${re(wrapper)}/drover-hook-ssh \\(node v\\d+\\.\\d+\\.\\d+\\)\\n  session    FAILED: ${re(says)}\\n  free disk  `, 'm'));
  });
}

test('a serve that says nothing: "did not answer within 2s", recorded as such in the failure memory', async () => {
  forgetFailures(farm);
  const m = farm.machines[0]!;
  const wrapper = wrapperDir(farm, 'serve-hang', 'drover-hook-ssh', 'serve', 'exec /bin/sleep 30');
  const machines = farm.machinesFile([m.line({ maxJobs: 1, uriOptions: { 'remote-program': wrapper, agent: '0', 'stall-timeout': '2' } })], 'serve-hang-machines');
  const d = await addDrv(farm, { name: 'serve-hang', cmd: 'echo x > $out' });
  const r = hookBuild(farm, machines, d);
  assert.equal(r.status, 1, r.stderr);
  const says = `${m.uri} (drover-hook-ssh serve) did not answer within 2s (no hello)`;
  assert.match(r.stderr, new RegExp(`^drover-hook-ssh: error: building '${re(d.drv)}' on ${re(m.uri)} failed: ${re(says)}$`, 'm'));
  assert.doesNotMatch(r.stderr, /ended before its hello/);
  assert.ok(r.ms < 20_000, `it gave up after the stall limit, not later: ${r.ms} ms`);
  const records = Object.values(healthRecords(farm));
  assert.deepEqual(records.map((h) => [h.failures, h.lastError]), [[1, says]]);
  const st = hookCommand(farm, ['status'], machines);
  assert.match(st.stdout, new RegExp(`recent failures:\\n  ${re(m.uri)}: 1 in a row, last \\d+s ago: ${re(says)}`));
});

test("check of a good machine: drover's own version from the session's hello, node's named as node's; one host on two lines, told apart by their options", async () => {
  const m = farm.machines[0]!;
  const machines = farm.machinesFile([m.line({ maxJobs: 1 }), m.line({ maxJobs: 1, uriOptions: { agent: '0' } })], 'good-machines');
  const ck = hookCommand(farm, ['check'], machines);
  assert.equal(ck.status, 0, ck.stdout + ck.stderr);
  assert.match(ck.stdout, /^machines file: .*good-machines \(2 machines\)$/m);
  const version = 'drover-hook-ssh 0\\.1\\.0, node v\\d+\\.\\d+\\.\\d+';
  assert.match(ck.stdout, new RegExp(`^${re(m.uri)}: ok\\n  login      ok .*\\n  store dir  ok: ${re(farm.storeDir)}\\n  drover     \\S+/drover-hook-ssh \\(${version}\\)\\n  session    ok \\(through the drover agent\\)\\n  free disk  [0-9.]+ GiB$`, 'm'));
  assert.match(ck.stdout, new RegExp(`^${re(m.uri)}\\?agent=0: ok\\n(  .*\\n){2}  drover     \\S+/drover-hook-ssh \\(${version}\\)\\n  session    ok \\(drover-hook-ssh serve\\)\\n`, 'm'));
});

/** A hello as a good serve says it, on this farm's store dir. */
function goodHello(): Buffer {
  return frame('H', JSON.stringify({ v: 2, storeDir: farm.storeDir, version: 'drover-hook-ssh 0.1.0', checksNarHashes: true }));
}

// After a good hello: the remote's later answers, each breaking the protocol at another stage.
const LATE_BAD_SERVES: { name: string; after: () => Buffer[]; says: string }[] = [
  { name: 'late-garbage', after: () => [Buffer.from('hello world\n')], says: `'hello world?' is not a session frame (is something else printing on the remote's stdout?)` },
  { name: 'late-not-json', after: () => [frame('M', '{xyz}')], says: `'{xyz}' while asking which inputs it lacks is not JSON` },
  { name: 'late-d-frame', after: () => [frame('D', 'x')], says: 'expected a M frame while asking which inputs it lacks, got D' },
  { name: 'late-e-frame', after: () => [frame('M', JSON.stringify({ missing: [] })), frame('E', '')], says: 'expected a M frame during the build, got E' },
  { name: 'late-end', after: () => [frame('M', JSON.stringify({ missing: [] }))], says: 'the session ended during the build' },
  {
    name: 'late-outputs',
    after: () => [frame('M', JSON.stringify({ missing: [] })), frame('M', JSON.stringify({ status: 0 })), frame('M', '{}')],
    says: 'expected a D or E frame inside an export stream, got M; nothing was registered',
  },
];

for (const bad of LATE_BAD_SERVES) {
  test(`a serve that says a good hello and then breaks the protocol (${bad.name}): exit 1 naming the derivation, the machine and what failed; the machine backs off`, async () => {
    const { m, machines, d, r } = await buildWithServe(bad.name, Buffer.concat([goodHello(), ...bad.after()]));
    assert.equal(r.status, 1, r.stderr);
    const says = `${m.uri} (drover-hook-ssh serve): ${bad.says}`;
    assert.match(r.stderr, new RegExp(`^drover-hook-ssh: error: building '${re(d.drv)}' on ${re(m.uri)} failed: ${re(says)}$`, 'm'));

    // Remembered exactly as a hello that goes wrong: the next hooks skip the machine for a while.
    const records = Object.values(healthRecords(farm));
    assert.deepEqual(records.map((h) => [h.failures, h.lastError]), [[1, says]]);
    const st = hookCommand(farm, ['status'], machines);
    assert.equal(st.status, 0, st.stderr);
    assert.match(st.stdout, new RegExp(`${re(m.uri)}\\s+\\S+\\s+0/1\\s.*backing off, retry in \\d+s`));
    assert.match(st.stdout, new RegExp(`recent failures:\\n  ${re(m.uri)}: 1 in a row, last \\d+s ago: ${re(says)}`));
  });
}

test('a serve whose build fails (status 100) after a good hello: exit 100, a build failure, no back-off', async () => {
  forgetFailures(farm);
  const m = farm.machines[0]!;
  const answer = path.join(farm.dir, 'answer-status-100');
  fs.writeFileSync(answer, Buffer.concat([goodHello(), frame('M', JSON.stringify({ missing: [] })), frame('M', JSON.stringify({ status: 100 }))]));
  const wrapper = wrapperDir(farm, 'serve-status-100', 'drover-hook-ssh', 'serve', `/bin/cat ${answer}; /bin/sleep 1; exit 0`);
  const machines = farm.machinesFile([m.line({ maxJobs: 1, uriOptions: { 'remote-program': wrapper, agent: '0' } })], 'serve-status-100-machines');
  const d = await addDrv(farm, { name: 'serve-status-100', cmd: 'echo x > $out' });
  const r = hookBuild(farm, machines, d);
  assert.equal(r.status, 100, r.stderr);
  assert.match(r.stderr, new RegExp(`^drover-hook-ssh: building '${re(d.drv)}' on ${re(m.uri)} failed \\(status 100\\)$`, 'm'));
  assert.deepEqual(healthRecords(farm), {});
});

test("an agent socket that answers garbage: the hook warns once naming the socket and builds through serve; check shows the agent UNUSABLE and why", async () => {
  forgetFailures(farm);
  const m = farm.machines[0]!;
  // A fake agent: `agent --start` starts (once) a server on a socket of its own that answers
  // every connection with a line of text, and prints that socket as the real one does.
  const sock = path.join(farm.dir, 'fake-agent.sock');
  const server = `const s = require('net').createServer((c) => c.end('hello world\\n')); s.listen(process.argv[1]); setTimeout(() => process.exit(0), 120000);`;
  const wrapper = wrapperDir(
    farm,
    'agent-garbage',
    'drover-hook-ssh',
    'agent',
    [
      `SOCK=${sock}`,
      'if [ ! -S "$SOCK" ]; then',
      `  setsid ${process.execPath} -e ${sh(server)} "$SOCK" </dev/null >/dev/null 2>&1 &`,
      '  i=0; while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do /bin/sleep 0.05; i=$((i+1)); done',
      'fi',
      'echo "$SOCK"; exit 0',
    ].join('\n'),
  );
  // A key of its own gives this line a master connection (and agent forward) of its own: the
  // control socket's name does not depend on remote-program, so it would reuse the real agent's.
  const key = path.join(farm.dir, 'agent-garbage-key');
  fs.copyFileSync(farm.userKey, key);
  fs.chmodSync(key, 0o600);
  const machines = farm.machinesFile([m.line({ maxJobs: 1, sshKey: key, uriOptions: { 'remote-program': wrapper } })], 'agent-garbage-machines');
  const d = await addDrv(farm, { name: 'agent-garbage', cmd: 'echo x > $out' });

  const r = hookBuild(farm, machines, d);
  assert.equal(r.status, 0, r.stderr);
  const why = `'hello world?' is not a session frame (is something else printing on the remote's stdout?)`;
  const warnings = r.stderr.split('\n').filter((l) => l.startsWith('drover-hook-ssh: warning:'));
  assert.equal(warnings.length, 1, r.stderr);
  assert.match(warnings[0]!, new RegExp(`^drover-hook-ssh: warning: the drover agent of ${re(m.uri)} \\(socket '/\\S+\\.agent'\\) is unusable: ${re(why)}; building through drover-hook-ssh serve instead$`));
  assert.match(r.stderr, /opened a session \(.* \(drover-hook-ssh serve\)\)/);
  // An agent passed over is not a machine that failed: serve worked.
  assert.deepEqual(healthRecords(farm), {});

  const ck = hookCommand(farm, ['check'], machines);
  assert.equal(ck.status, 0, ck.stdout + ck.stderr);
  assert.match(ck.stdout, new RegExp(`^${re(m.uri)}: ok\\n(  .*\\n){3}  agent      UNUSABLE: ${re(why)} \\(socket '/\\S+\\.agent'\\); sessions use drover-hook-ssh serve\\n  session    ok \\(drover-hook-ssh serve\\)\\n`, 'm'));
  assert.doesNotMatch(ck.stdout + ck.stderr, /warning:/);
});
