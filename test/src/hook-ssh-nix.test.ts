// drover-hook-ssh with `?engine=nix`: the remote side is real Nix 2.8 (nix-store --import, -r, --export).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { Farm } from './sshd-harness.js';
import { addBlob, addDrv, build, validLocally } from './hook-ssh-helpers.js';

let farm: Farm;

before(async () => {
  farm = await Farm.start({ machines: 1, remoteEnv: { DROVER_NO_SYNC: '1' } });
});

after(async () => {
  await farm?.close();
});

/** Paths valid in the machine's store, as the remote Nix itself sees them. */
function validForRemoteNix(paths: string[]): string[] {
  const r = farm.machines[0]!.run(['nix-store', '--check-validity', '--print-invalid', ...paths]);
  assert.equal(r.status, 0, r.stderr);
  const invalid = new Set(r.stdout.split('\n').filter((l) => l));
  return paths.filter((p) => !invalid.has(p));
}

test('engine=nix: real Nix on the remote builds a small DAG; outputs come back registered', async () => {
  const m = farm.machines[0]!;
  const machines = farm.machinesFile([m.line({ maxJobs: 2, uriOptions: { engine: 'nix' } })], 'nix-machines');
  const src = await addBlob(farm, 'nix-src', 100_000, 3);
  const dep = await addDrv(farm, { name: 'nix-dep', cmd: `echo "nix built me"; /usr/bin/wc -c < ${src} > $out`, srcs: [src] });
  const top = await addDrv(farm, { name: 'nix-top', cmd: `read n < ${dep.out}; echo "size $n" > $out`, inputs: [dep] });
  const r = await build(farm, { machines }, [top.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.remote.get(dep.drv), m.uri);
  assert.equal(r.remote.get(top.drv), m.uri);
  assert.equal(fs.readFileSync(top.out, 'utf8'), 'size 100000\n');
  assert.deepEqual(validLocally(farm, [dep.out, top.out]), [dep.out, top.out]);
  assert.deepEqual(validForRemoteNix([src, dep.drv, top.drv, dep.out, top.out]), [src, dep.drv, top.drv, dep.out, top.out]);
  const log = fs.readdirSync(`${farm.stateDir}/log/drvs`, { recursive: true }).map(String).find((f) => f.endsWith('-nix-dep.drv'));
  assert.ok(log);
  assert.match(fs.readFileSync(`${farm.stateDir}/log/drvs/${log}`, 'utf8'), /nix built me/);
  const ck = spawnSync('drover-hook-ssh', ['check', '--machines', machines], { env: farm.env(), encoding: 'utf8' });
  assert.equal(ck.status, 0, ck.stdout + ck.stderr);
  assert.match(ck.stdout, /\n {2}nix\s+\S*nix-store \(nix-store \(Nix\) 2\.\d+/);
});

test('engine=nix: a failing build is a build failure (exit 100)', async () => {
  const m = farm.machines[0]!;
  const machines = farm.machinesFile([m.line({ maxJobs: 1, uriOptions: { engine: 'nix' } })], 'nix-fail-machines');
  const bad = await addDrv(farm, { name: 'nix-bad', cmd: 'echo nix fails this; exit 1' });
  const r = await build(farm, { machines }, [bad.drv]);
  assert.equal(r.code, 100, r.stderr);
  assert.match(r.stderr, /@ build-failed .*nix-bad\.drv/);
  assert.match(r.stderr, /nix fails this/);
  assert.deepEqual(validLocally(farm, [bad.out]), []);
});
