// Tests of fitting, ranking, and the "no machine fits" table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMachines } from './machines.js';
import { fits, rankCandidates, noFitTable, whyNot } from './machine-choice.js';

const ms = parseMachines(
  [
    'ssh://plain x86_64-linux - 2 1',
    'ssh://kvm x86_64-linux - 4 2 kvm',
    'ssh://bench x86_64-linux - 1 1 - benchmark',
    'ssh://arm aarch64-linux - 2 1',
    'ssh://off x86_64-linux - 0 1',
    'ssh://local',
  ].join('\n'),
);
const [plain, kvm, bench, arm, off, local] = ms as [typeof ms[0], typeof ms[0], typeof ms[0], typeof ms[0], typeof ms[0], typeof ms[0]];
const req = (system: string, requiredFeatures: string[] = []) => ({ system, requiredFeatures, drvPath: '/s/x.drv' });

test('fits: system, supported and mandatory features, max-jobs 0, empty systems = local', () => {
  assert.ok(fits(plain, req('x86_64-linux'), 'x86_64-linux'));
  assert.ok(!fits(plain, req('x86_64-linux', ['kvm']), 'x86_64-linux'));
  assert.ok(fits(kvm, req('x86_64-linux', ['kvm']), 'x86_64-linux'));
  assert.ok(fits(kvm, req('x86_64-linux'), 'x86_64-linux'));
  assert.ok(!fits(bench, req('x86_64-linux'), 'x86_64-linux'), 'mandatory feature not asked for');
  assert.ok(fits(bench, req('x86_64-linux', ['benchmark']), 'x86_64-linux'), 'mandatory counts as supported');
  assert.ok(!fits(arm, req('x86_64-linux'), 'x86_64-linux'));
  assert.ok(!fits(off, req('x86_64-linux'), 'x86_64-linux'));
  assert.ok(fits(local, req('riscv64-linux'), 'riscv64-linux'));
  assert.ok(!fits(local, req('x86_64-linux'), 'riscv64-linux'));
});

test('rank: lowest load/speed, then highest speed, then lowest load; full machines dropped', () => {
  const r = rankCandidates([
    { machine: plain, load: 1 }, // 1/1 = 1
    { machine: kvm, load: 2 }, // 2/2 = 1, faster: wins the tie
    { machine: bench, load: 1 }, // full
    { machine: arm, load: 0 }, // 0
  ]);
  assert.deepEqual(r.map((c) => c.machine.uri), ['ssh://arm', 'ssh://kvm', 'ssh://plain']);
  const tie = rankCandidates([
    { machine: plain, load: 1 },
    { machine: arm, load: 1 },
  ]);
  assert.deepEqual(tie.map((c) => c.machine.uri), ['ssh://plain', 'ssh://arm'], 'file order breaks full ties');
});

test('no-fit table names what was asked and why each machine does not fit', () => {
  const t = noFitTable(ms, req('x86_64-linux', ['kvm', 'gpu']), 'x86_64-linux');
  assert.match(t, /no machine can build '\/s\/x.drv' \(system x86_64-linux, features kvm,gpu\)/);
  assert.match(t, /ssh:\/\/kvm\s+x86_64-linux\s+4\s+kvm\s+-\s+lacks gpu/);
  assert.match(t, /ssh:\/\/arm\s+aarch64-linux.*no x86_64-linux/);
  assert.match(t, /ssh:\/\/off.*max-jobs is 0/);
  assert.equal(whyNot(bench, req('x86_64-linux'), 'x86_64-linux'), 'only takes builds that require benchmark');
  assert.match(noFitTable([], req('x86_64-linux'), 'x86_64-linux'), /lists no machines/);
});
