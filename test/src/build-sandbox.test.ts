// The bubblewrap sandbox of drover-build: what a builder sees, what it may write, the network.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { BuildEnv } from './build-harness.js';

const e = new BuildEnv();
after(() => e.cleanup());

const report = (lines: string[]) => lines.map((l) => `${l} >> $out`).join('; ');

test('only the input closure and the sandbox paths are visible; outputs and /build are writable', async () => {
  const dep = await e.drv({ name: 'sb-dep', cmd: 'echo dep > $out' });
  const other = await e.drv({ name: 'sb-other', cmd: 'echo other > $out' });
  assert.equal(e.build([dep.drv, other.drv]).code, 0);
  const secret = path.join(e.dir, 'secret');
  fs.writeFileSync(secret, 'host file');
  const a = await e.drv({
    name: 'sb-check',
    inputs: [dep],
    env: { dep: dep.out.out!, other: other.out.out!, secret },
    cmd: report([
      'echo "dep=$(/bin/cat $dep)"',
      'echo "deppath=$dep"',
      'echo "other=$(/bin/cat $other >/dev/null 2>&1 && echo seen || echo hidden)"',
      'echo "secret=$(/bin/cat $secret 2>/dev/null || echo hidden)"',
      'echo "etc=$(/bin/ls /etc | /usr/bin/tr "\\n" " ")"',
      'echo "writeinput=$( (echo x > $dep) 2>/dev/null && echo yes || echo no)"',
      'echo "build=$(echo t > /build/t && /bin/cat /build/t)"',
      'echo "top=$NIX_BUILD_TOP"',
      'echo "host=$(/bin/uname -n)"',
      'echo "net=$(/bin/cat /proc/net/dev | /usr/bin/tail -n +3 | /usr/bin/cut -d: -f1 | /usr/bin/tr -d " " | /usr/bin/tr "\\n" " ")"',
    ]),
  });
  const r = e.build(['--sandbox', 'bwrap', a.drv]);
  assert.equal(r.code, 0, r.stderr);
  const got = Object.fromEntries(fs.readFileSync(a.out.out!, 'utf8').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  assert.equal(got.dep, 'dep');
  assert.equal(got.other, 'hidden');
  assert.equal(got.secret, 'hidden');
  assert.equal(got.etc!.trim(), 'group hosts passwd');
  assert.equal(got.writeinput, 'no');
  assert.equal(got.build, 't');
  assert.equal(got.top, '/build');
  assert.equal(got.host, 'localhost');
  assert.equal(got.net!.trim(), 'lo');
  assert.deepEqual(e.store.db.queryPathInfo(a.out.out!)!.references, [dep.out.out!]);
  // Nothing of the sandbox is left in the store dir.
  assert.deepEqual(fs.readdirSync(e.t.storeDir).filter((n) => n.endsWith('.drover-sandbox')), []);
});

test('fixed-output derivations keep the network', async () => {
  const hostNet = fs.readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2).filter((l) => l.trim()).length;
  const probe = await e.drv({
    name: 'sb-fod-probe',
    cmd: 'echo > $out; /bin/cat /proc/net/dev | /usr/bin/wc -l',
    fixed: { hashAlgo: 'sha256', hash: createHash('sha256').update('\n').digest('hex') },
  });
  const r = e.build(['--sandbox', 'bwrap', '-L', probe.drv]);
  assert.equal(r.code, 0, r.stderr);
  const lines = Number(/sb-fod-probe> (\d+)/.exec(r.stderr)![1]);
  assert.equal(lines - 2, hostNet, "the host's interfaces are visible");
});

test('--sandbox-paths replaces the defaults and --extra-sandbox-paths adds to them', async () => {
  const extra = path.join(e.dir, 'extra-dir');
  fs.mkdirSync(extra);
  fs.writeFileSync(path.join(extra, 'f'), 'extra content');
  const a = await e.drv({ name: 'sb-extra', env: { extra }, cmd: '/bin/cat $extra/f > $out' });
  assert.equal(e.build(['--sandbox', 'bwrap', a.drv]).code, 100, 'not visible by default');
  const r = e.build(['--sandbox', 'bwrap', '--extra-sandbox-paths', `/mnt/x=${extra}`, `${extra}`, '--', a.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.readFileSync(a.out.out!, 'utf8'), 'extra content');
  // With only /bin/sh given, coreutils are gone.
  const b = await e.drv({ name: 'sb-bare', cmd: '/bin/cat /dev/null && echo > $out' });
  const rb = e.build(['--sandbox', 'bwrap', '--sandbox-paths', '/bin/sh', '/lib', '/lib64', '/usr/lib', '--', b.drv]);
  assert.equal(rb.code, 100, rb.stderr);
  assert.match(rb.stderr, /cat: not found|No such file/);
});

test('--sandbox auto builds in bwrap here', async () => {
  const a = await e.drv({ name: 'sb-auto', cmd: 'echo $NIX_BUILD_TOP > $out' });
  const r = e.build(['--sandbox', 'auto', a.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.readFileSync(a.out.out!, 'utf8'), '/build\n');
});
