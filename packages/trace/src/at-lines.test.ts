// Tests of the `@ VERB` dialects: drover, Nix 0.16/1.x, plans, unknown and broken lines.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseTrace } from './index.js';
import { finalStates } from './testing.js';

const d = (n: string): string => `/nix/store/ffffffffffffffffffffffffffffffff-${n}.drv`;
const o = (n: string): string => `/nix/store/gggggggggggggggggggggggggggggggg-${n}`;

test('drover lines: started, remote, succeeded, failed, hook-failed', () => {
  const { events } = parseTrace([
    `@ build-started ${d('a')} ${o('a')} x86_64-linux /var/log/drover/a.drv`,
    `@ build-remote ${d('a')} ssh://builder1`,
    `@ build-succeeded ${d('a')} ${o('a')}`,
    `@ build-started ${d('b')} ${o('b')} x86_64-linux /var/log/drover/b.drv`,
    `@ build-failed ${d('b')} ${o('b')} 100 builder for '${d('b')}' failed with exit code 2`,
    `@ build-started ${d('c')} ${o('c')} x86_64-linux /l`,
    `@ hook-failed ${d('c')} ${o('c')} 1 ssh: Connection refused`,
  ].join('\n') + '\n');
  assert.ok(events.every((e) => e.source === 'drover'));
  assert.deepEqual(finalStates(events), { a: 'ok', b: 'builder', c: 'hook' });
  const remote = events.find((e) => e.type === 'build-remote');
  assert.ok(remote?.type === 'build-remote' && remote.host === 'ssh://builder1');
  const failed = events.find((e) => e.type === 'build-failed' && e.cause === 'builder');
  assert.ok(failed?.type === 'build-failed' && failed.status === 100 && failed.message!.endsWith('exit code 2'));
});

test('a hook failure is not final: the same derivation may still build', () => {
  const { events } = parseTrace([
    `@ build-started ${d('c')} ${o('c')} x86_64-linux /l`,
    `@ hook-failed ${d('c')} ${o('c')} 1 ssh: Connection refused`,
    `@ build-started ${d('c')} ${o('c')} x86_64-linux /l`,
    `@ build-succeeded ${d('c')} ${o('c')}`,
  ].join('\n') + '\n');
  assert.deepEqual(finalStates(events), { c: 'ok' });
});

test('Nix 1.x variants: - for OUT, timeout, cached, unsupported-platform, remote start/done, substituters', () => {
  const { events, warnings } = parseTrace([
    `@ build-started ${d('a')} - x86_64-linux /nix/var/log/nix/drvs/ff/a.drv.bz2`,
    `@ build-succeeded ${d('a')} -`,
    `@ build-started ${d('t')} - x86_64-linux /l`,
    `@ build-failed ${d('t')} - timeout`,
    `@ build-failed ${d('k')} - cached`,
    `@ build-failed ${d('u')} - 1 timeout`,
    `@ unsupported-platform ${d('p')} armv7l-linux`,
    `@ build-remote-start ${d('r')} root@builder2`,
    `@ build-remote-done ${d('r')} root@builder2`,
    `@ substituter-started ${o('s')} /nix/store/x-nix/libexec/nix/substituters/download-from-binary-cache.pl`,
    `@ substituter-failed ${o('s')} 1 download failed`,
    `@ substituter-succeeded ${o('s2')}`,
  ].join('\n') + '\n');
  assert.deepEqual(warnings, []);
  assert.ok(events.every((e) => e.source === 'nix'), JSON.stringify(events.map((e) => e.source)));
  assert.deepEqual(finalStates(events), { a: 'ok', t: 'timeout', k: 'cached', u: 'timeout', p: 'unsupported' });
  assert.deepEqual(events.filter((e) => e.type.startsWith('build-remote')).map((e) => e.type), ['build-remote', 'build-remote-done']);
  const sf = events.find((e) => e.type === 'substitute-failed');
  assert.ok(sf?.type === 'substitute-failed' && sf.message === '1 download failed');
  const ss = events.find((e) => e.type === 'substitute-started');
  assert.ok(ss?.type === 'substitute-started' && ss.substituter!.endsWith('download-from-binary-cache.pl'));
});

test('an unknown verb is an unknown event; a broken known line is reported and passed through', () => {
  const { events, warnings, passthrough } = parseTrace('@ build-teleported x y\n@ build-started\n@ 123 not a verb\n');
  assert.deepEqual(events.map((e) => e.type), ['unknown']);
  assert.ok(events[0]!.type === 'unknown' && events[0]!.raw === '@ build-teleported x y');
  assert.deepEqual(warnings, ['<input>:2: @ build-started without a derivation']);
  assert.equal(passthrough.toString(), '@ build-started\n@ 123 not a verb\n');
});

test('plain-text plans queue derivations; never-started ones fail at the end', () => {
  const { events } = parseTrace([
    'these 3 derivations will be built:',
    `  ${d('a')}`,
    `  ${d('b')}`,
    `  ${d('c')}`,
    `@ build-started ${d('a')} ${o('a')} x86_64-linux /l`,
    `@ build-failed ${d('a')} ${o('a')} 100 boom`,
    `@ build-started ${d('b')} ${o('b')} x86_64-linux /l`,
    `@ build-succeeded ${d('b')} ${o('b')}`,
  ].join('\n') + '\n');
  // b started after a failed, so the builder kept going: c waited on the failure.
  assert.deepEqual(finalStates(events), { a: 'builder', b: 'ok', c: 'dependency' });
  assert.equal(events.filter((e) => e.type === 'build-queued').length, 3);
});

test("drover-build's own failures: an unsupported platform, and a derivation whose input failed", () => {
  const { events } = parseTrace([
    `@ build-failed ${d('arm')} ${o('arm')} 0 cannot build '${d('arm')}': it needs a 'aarch64-darwin' machine, but this is a 'x86_64-linux' machine with features {benchmark, big-parallel} and there is no build hook`,
    `@ build-failed ${d('kvm')} ${o('kvm')} 0 cannot build '${d('kvm')}': it needs the system features {kvm}, but this is a 'x86_64-linux' machine with features {} and no build hook takes it`,
    `@ build-started ${d('lib')} ${o('lib')} x86_64-linux /l`,
    `@ build-failed ${d('lib')} ${o('lib')} 100 builder for '${d('lib')}' failed with exit code 2`,
    `@ build-failed ${d('app')} ${o('app')} 0 cannot build '${d('app')}': its input '${d('lib')}' failed`,
  ].join('\n') + '\n');
  assert.deepEqual(finalStates(events), { arm: 'unsupported', kvm: 'unsupported', lib: 'builder', app: 'dependency' });
  const app = events.find((e) => e.type === 'build-failed' && e.drv === d('app'));
  assert.ok(app?.type === 'build-failed' && app.status === 0 && app.message === `cannot build '${d('app')}': its input '${d('lib')}' failed`);
});
