// drover-hook-ssh against remote ends that do not hold a session: garbage, another protocol version, a hello that is not one, silence.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Farm } from './sshd-harness.js';
import { addDrv, healthRecords, hookBuild, hookCommand, re, wrapperDir } from './hook-ssh-helpers.js';

let farm: Farm;

before(async () => {
  farm = await Farm.start({ machines: 1, remoteEnv: { DROVER_NO_SYNC: '1', DROVER_SANDBOX: 'none' } });
});

after(async () => {
  await farm?.close();
});

function forgetFailures(): void {
  fs.rmSync(path.join(farm.stateDir, 'hook-ssh', 'health'), { recursive: true, force: true });
}

/** A frame of the session protocol: type, u32 LE length, payload. */
function frame(type: string, payload: string): Buffer {
  const body = Buffer.from(payload);
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32LE(body.length, 1);
  return Buffer.concat([head, body]);
}

const BAD_SERVES: { name: string; answer: Buffer; says: string }[] = [
  { name: 'garbage', answer: Buffer.from('hello world\n'), says: `'hello world?' is not a session frame (is something else printing on the remote's stdout?)` },
  { name: 'v1', answer: frame('H', JSON.stringify({ v: 1, storeDir: '/tmp/xx/abcd' })), says: 'speaks session protocol 1, this hook speaks 2; install the same drover version on both machines' },
  { name: 'not-json', answer: frame('H', '{xyz}'), says: `its hello '{xyz}' is not JSON` },
  { name: 'null', answer: frame('H', 'null'), says: 'its hello null is not a JSON object' },
];

for (const bad of BAD_SERVES) {
  test(`a serve that answers ${bad.name}: exit 1 naming the derivation, the machine and what failed; the machine backs off; check says FAILED`, async () => {
    forgetFailures();
    const m = farm.machines[0]!;
    const answer = path.join(farm.dir, `answer-${bad.name}`);
    fs.writeFileSync(answer, bad.answer);
    const wrapper = wrapperDir(farm, `serve-${bad.name}`, 'drover-hook-ssh', 'serve', `/bin/cat ${answer}; /bin/sleep 1; exit 0`);
    const machines = farm.machinesFile([m.line({ maxJobs: 1, uriOptions: { 'remote-program': wrapper, agent: '0' } })], `serve-${bad.name}-machines`);
    const d = await addDrv(farm, { name: `serve-${bad.name}`, cmd: 'echo x > $out' });

    const r = hookBuild(farm, machines, d);
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
    forgetFailures();
    const ck = hookCommand(farm, ['check'], machines);
    assert.equal(ck.status, 1, ck.stdout + ck.stderr);
    assert.match(ck.stdout, new RegExp(`^${re(m.uri)}: FAILED\\n  login      ok .*\\n  store dir  ok: ${re(farm.storeDir)}\\n  drover     ${re(wrapper)}/drover-hook-ssh \\(node v\\d+\\.\\d+\\.\\d+\\)\\n  session    FAILED: ${re(says)}\\n  free disk  `, 'm'));
  });
}

test('a serve that says nothing: "did not answer within 2s", recorded as such in the failure memory', async () => {
  forgetFailures();
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
