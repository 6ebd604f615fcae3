import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LinePrefixer, LineSplitter, tailLines } from './build-log.js';
import { exitStatusOf, type BuildFailure } from './failure.js';
import { canBuildSystem, missingFeatures, requiredFeatures } from './system.js';
import { parseSandboxPath, bwrapArgs } from './sandbox.js';
import { dagEdges } from './dag-gen.js';

test('exit statuses: 0, 100 (+1 for a timeout) when all failures are permanent, else 1', () => {
  const f = (kind: BuildFailure['kind']): BuildFailure => ({ kind, status: 0, message: '' });
  assert.equal(exitStatusOf([]), 0);
  assert.equal(exitStatusOf([f('builder'), f('output')]), 100);
  assert.equal(exitStatusOf([f('builder'), f('timeout')]), 101);
  assert.equal(exitStatusOf([f('builder'), f('hook')]), 1);
  assert.equal(exitStatusOf([f('hash-mismatch')]), 1);
  assert.equal(exitStatusOf([f('unsupported')]), 100);
});

test('systems and features', () => {
  assert.equal(canBuildSystem('x86_64-linux', 'x86_64-linux'), true);
  assert.equal(canBuildSystem('i686-linux', 'x86_64-linux'), true);
  assert.equal(canBuildSystem('i686-linux', 'aarch64-linux'), false);
  assert.equal(canBuildSystem('aarch64-linux', 'x86_64-linux'), false);
  assert.deepEqual(requiredFeatures({ requiredSystemFeatures: ' kvm  big-parallel ' }), ['kvm', 'big-parallel']);
  assert.deepEqual(missingFeatures(['kvm', 'gpu'], ['kvm']), ['gpu']);
});

test('log tails and prefixed lines', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-worker-unit-'));
  try {
    const f = path.join(dir, 'log');
    fs.writeFileSync(f, Array.from({ length: 40 }, (_, i) => `l${i}`).join('\n') + '\n');
    const t = tailLines(f, 25);
    assert.equal(t.length, 25);
    assert.equal(t[0], 'l15');
    assert.equal(t[24], 'l39');
    assert.deepEqual(tailLines(path.join(dir, 'none')), []);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
  let out = '';
  const p = new LinePrefixer('x> ', (s) => (out += s));
  const euro = Buffer.from('€\n');
  p.push(Buffer.from('a\nb'));
  p.push(euro.subarray(0, 1));
  p.push(euro.subarray(1));
  p.push(Buffer.from('tail'));
  p.end();
  assert.equal(out, 'x> a\nx> b€\nx> tail\n');
  const lines: string[] = [];
  const s = new LineSplitter((l) => lines.push(l));
  s.push('# acc');
  s.push('ept\nmsg\nlast');
  s.end();
  assert.deepEqual(lines, ['# accept', 'msg', 'last']);
});

test('sandbox paths: PATH, TARGET=SOURCE, optional, and mounts parents first', () => {
  assert.deepEqual(parseSandboxPath('/bin/sh'), { target: '/bin/sh', source: '/bin/sh', optional: false });
  assert.deepEqual(parseSandboxPath('/x=/y/z?'), { target: '/x', source: '/y/z', optional: true });
  assert.throws(() => parseSandboxPath('relative'), /absolute/);
  const args = bwrapArgs({
    bwrap: '/usr/bin/bwrap',
    storeDir: '/nix/store',
    storeRoot: '/nix/store/.scratch',
    buildDir: '/tmp/b',
    etcDir: '/tmp/etc',
    inputs: ['/nix/store/aaaa-in'],
    paths: [{ target: '/opt/thing', source: '/usr', optional: false }],
    network: false,
  });
  const s = args.join(' ');
  assert.ok(s.includes('--ro-bind /usr /opt/thing'));
  assert.ok(s.indexOf('--bind /nix/store/.scratch /nix/store') < s.indexOf('--ro-bind /nix/store/aaaa-in /nix/store/aaaa-in'));
  assert.ok(s.includes('--unshare-all') && !s.includes('--share-net'));
  assert.ok(s.includes('--bind /tmp/b /build'));
});

test('DAG shapes are deterministic and acyclic', () => {
  const a = dagEdges({ shape: 'random', n: 200, seed: 5 });
  assert.deepEqual(a, dagEdges({ shape: 'random', n: 200, seed: 5 }));
  a.forEach((ins, i) => ins.forEach((j) => assert.ok(j < i)));
  const w = dagEdges({ shape: 'wide', n: 10 });
  assert.equal(w.length, 11);
  assert.equal(w[10]!.length, 10);
  assert.deepEqual(dagEdges({ shape: 'chain', n: 3 }), [[], [0], [1]]);
});
