// drover-build killed, interrupted and racing other builders on one store: kill -9 during
// sandboxed builds, real Nix (`nix-store -r`) building the same derivation at the same time,
// a kill loop over outputs with many files, symlinks and several outputs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { STORE_BIN, run } from '@drover/store/testing';
import { BuildEnv, type Built } from './build-harness.js';
import { nixEnv } from './nix-env.js';

const e = new BuildEnv();
after(() => e.cleanup());

const hasNix = spawnSync('nix-store', ['--version']).status === 0;

/** Starts drover-build and resolves once the build of `drv` has started (its trace line). */
async function startedBuilding(args: string[], drv: string, env: NodeJS.ProcessEnv = {}) {
  const p = e.start(['--print-build-trace', ...args], { env });
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${drv} never started: ${stderr}`)), 20_000);
    p.child.stderr!.on('data', (c) => {
      stderr += c;
      if (stderr.includes(`@ build-started ${drv}`)) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  return p;
}

function verifyClean(): void {
  const v = run(STORE_BIN, ['verify', '--check-contents'], { env: e.env });
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.equal(v.stderr, '');
}

/** The counter's lines: what each builder appended when it started and ended. */
function runs(counter: string): string[] {
  return fs.existsSync(counter) ? fs.readFileSync(counter, 'utf8').trim().split('\n').filter((l) => l) : [];
}

/** A builder that notes its start and end in `counter` (outside any sandbox) around `body`. */
function noted(counter: string, body: string): string {
  return `echo start-$$ >> ${counter}; ${body}; echo end-$$ >> ${counter}`;
}

test('kill -9 during a sandboxed build: its scratch store is removed by the next build of it', async (t) => {
  const probe = await e.drv({ name: 'bwrap-probe', cmd: 'echo > $out' });
  if (e.build(['--sandbox', 'bwrap', probe.drv]).code !== 0) {
    t.skip('bwrap cannot run here');
    return;
  }
  const scratch = () => fs.readdirSync(e.t.storeDir).filter((n) => n.endsWith('.drover-sandbox'));
  const slow = await e.drv({ name: 'sandbox-killed', outputs: ['out', 'dev'], cmd: '/bin/mkdir $out $dev; echo partial > $out/f; /bin/sleep 2; echo > $dev/g' });
  for (let round = 0; round < 2; round++) {
    const p = await startedBuilding(['--sandbox', 'bwrap', slow.drv], slow.drv);
    await new Promise((r) => setTimeout(r, 300));
    p.child.kill('SIGKILL');
    await p.result;
    assert.equal(e.isValid(slow.out.out!), false);
    assert.equal(fs.existsSync(slow.out.out!), false, 'the partial output never reached the store');
  }
  // What two killed runs left is one scratch dir, not one per run.
  assert.equal(scratch().length, 1, `scratch left by the killed runs: ${scratch()}`);
  const r = e.build(['--sandbox', 'bwrap', slow.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(scratch(), [], 'no scratch store is left in the store dir');
  assert.equal(fs.readFileSync(`${slow.out.out}/f`, 'utf8'), 'partial\n');
  verifyClean();
});

test('nix-store -r started during a local drover build waits for it instead of building it again', { skip: !hasNix && 'no nix-store' }, async () => {
  const nenv = nixEnv(e.dir, e.t.storeDir, e.t.stateDir);
  const decline = e.script('decline-hook', '#!/bin/sh\nwhile read -r am system drv features; do echo "# decline" >&2; done\n');
  for (const [tag, extra] of [
    ['local', []],
    // A build the hook declined holds Nix's lock too, taken when the hook said no.
    ['declined', ['--build-hook', decline]],
  ] as const) {
    const counter = path.join(e.dir, `nix-race-${tag}`);
    const x = await e.drv({ name: `nix-race-${tag}`, cmd: noted(counter, '/bin/mkdir $out; for i in 1 2 3 4 5 6 7 8; do echo $i > $out/f$i; /bin/sleep 0.2; done') });
    const p = await startedBuilding(['--sandbox', 'none', ...extra, x.drv], x.drv);
    await new Promise((r) => setTimeout(r, 200));
    const n = spawn('nix-store', ['-r', x.drv], { env: { ...process.env, ...nenv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let nout = '';
    n.stdout!.on('data', (c) => (nout += c));
    n.stderr!.on('data', (c) => (nout += c));
    const nixCode = await new Promise((res) => n.on('close', res));
    const r = await p.result;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(nixCode, 0, nout);
    assert.equal(runs(counter).length, 2, `${tag}: built once, not by both at once: ${runs(counter).join(' ')}`);
    assert.equal(e.isValid(x.out.out!), true);
    assert.equal(fs.existsSync(`${x.out.out}.lock`), false, 'the lock file is gone once the output is valid');
  }
  verifyClean();
});

test('a drover-build started during a nix-store -r build of the same derivation waits for it', { skip: !hasNix && 'no nix-store' }, async () => {
  const nenv = nixEnv(e.dir, e.t.storeDir, e.t.stateDir);
  const counter = path.join(e.dir, 'nix-first');
  const x = await e.drv({ name: 'nix-first', cmd: noted(counter, '/bin/mkdir $out; echo > $out/f; /bin/sleep 1.5') });
  const n = spawn('nix-store', ['-r', x.drv], { env: { ...process.env, ...nenv }, stdio: 'ignore' });
  const nixDone = new Promise((res) => n.on('close', res));
  for (let i = 0; i < 200 && runs(counter).length === 0; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(runs(counter).length, 1, 'Nix started building');
  const r = e.build(['--sandbox', 'none', x.drv]);
  assert.equal(await nixDone, 0);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${x.out.out}\n`);
  assert.match(r.stderr, /waiting for the lock on '.*nix-first\.lock'/);
  assert.equal(runs(counter).length, 2, runs(counter).join(' '));
  verifyClean();
});

test('kill -9 at random moments over a DAG of multi-output, many-file, symlink outputs: never half-registered, the rerun finishes', async () => {
  const all: Built[] = [];
  let prev: Built[] = [];
  for (let lvl = 0; lvl < 3; lvl++) {
    const cur: Built[] = [];
    for (let i = 0; i < 3; i++) {
      cur.push(
        await e.drv({
          name: `kl-${lvl}-${i}`,
          outputs: ['out', 'dev', 'lib'],
          inputs: prev.map((p) => ({ drv: p, outputs: ['out'] })),
          cmd:
            '/bin/mkdir -p $out/d $dev $lib; n=0; while [ $n -lt 100 ]; do echo $n > $out/d/f$n; /bin/ln -s $out/d/f$n $dev/l$n; n=$((n+1)); done; ' +
            `/bin/sleep 0.${(lvl * 3 + i) % 4}; echo $name > $lib/m; /bin/ln -s missing $lib/dangling`,
        }),
      );
    }
    all.push(...cur);
    prev = cur;
  }
  const tops = prev.map((b) => b.drv);
  // Killed at spread-out moments (a deterministic sequence: a failure can be replayed).
  for (const ms of [150, 700, 400, 1100, 250]) {
    const p = e.start(['--sandbox', 'none', '-j', '3', ...tops], { env: { DROVER_NO_SYNC: '0' } });
    await new Promise((r) => setTimeout(r, ms));
    p.child.kill('SIGKILL');
    await p.result;
    verifyClean();
    for (const b of all) {
      const valid = Object.values(b.out).map((o) => e.isValid(o));
      assert.ok(valid.every((v) => v) || valid.every((v) => !v), `${b.drv}: all outputs valid or none`);
      if (valid[0]) assert.equal(fs.readdirSync(`${b.out.out}/d`).length, 100, 'a valid output is complete');
    }
  }
  const r = e.build(['--sandbox', 'none', '-j', '3', ...tops]);
  assert.equal(r.code, 0, r.stderr);
  for (const b of all) for (const o of Object.values(b.out)) assert.equal(e.isValid(o), true);
  verifyClean();
  // The builders of the killed runs are gone with them (the spawner kills their groups).
  const ps = spawnSync('/bin/sh', ['-c', 'ps -eo args'], { encoding: 'utf8' }).stdout;
  assert.ok(!ps.split('\n').some((l) => l.includes(e.t.storeDir) && !l.includes('ps -eo')), 'no builder of this store is still running');
});

test("nix-store --gc during drover-build's builds keeps their derivations, outputs and sandbox scratch (temporary roots), and collects them once it exits", { skip: !hasNix && 'no nix-store' }, async () => {
  const nenv = nixEnv(e.dir, e.t.storeDir, e.t.stateDir);
  const gc = () => {
    const r = spawnSync('nix-store', ['--gc'], { env: { ...process.env, ...nenv }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  };
  for (const sandbox of ['none', 'bwrap']) {
    const x = await e.drv({ name: `gc-during-${sandbox}`, cmd: '/bin/mkdir $out; for i in 1 2 3 4 5 6; do echo $i > $out/f$i; /bin/sleep 0.25; done' });
    const p = await startedBuilding(['--sandbox', sandbox, x.drv], x.drv);
    gc();
    await new Promise((r) => setTimeout(r, 500));
    gc();
    const r = await p.result;
    assert.equal(r.code, 0, `${sandbox}: ${r.stderr}`);
    assert.equal(r.stdout, `${x.out.out}\n`);
    assert.deepEqual(fs.readdirSync(x.out.out!).sort(), ['f1', 'f2', 'f3', 'f4', 'f5', 'f6'], `${sandbox}: the output whole`);
    verifyClean();
    // Nothing roots them now that drover-build is gone: the next collection takes them.
    gc();
    assert.equal(e.isValid(x.out.out!), false, `${sandbox}: the output is collected once the build's roots are gone`);
    assert.equal(fs.existsSync(x.drv), false);
  }
});
