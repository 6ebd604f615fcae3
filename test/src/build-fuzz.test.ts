// Regressions found by fuzzing the inputs of drover-build (argv, stdin, derivations, hook replies)
// and drover-hook-ssh (argv, remote answers). Each case once left a process behind, hung, or
// failed unclearly.
import { test, after } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { hashPath, serializeDerivation, type Derivation } from '@drover/store';
import { BuildEnv, SYSTEM } from './build-harness.js';
import { BIN_DIR, Farm } from './sshd-harness.js';
import { addDrv, allValidLocally, hookBuild, validLocally, wrapperDir } from './hook-ssh-helpers.js';

const e = new BuildEnv();
after(() => e.cleanup());

/** Whether process `pid` still runs (a zombie counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Polls for `pid` to be gone, up to `ms`. */
async function gone(pid: number, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

function readPid(file: string): number {
  return Number(fs.readFileSync(file, 'utf8').trim());
}

test('a process a hook leaves in its group after answering dies with the hook, not after drover-build', async () => {
  const d = await e.drv({ name: 'hook-leftover', cmd: 'echo x > $out' });
  const pidFile = path.join(e.dir, 'leftover-decline.pid');
  // Declines (so the build is local) and leaves a sleeper behind in its process group.
  const hook = e.script('leftover-decline-hook', `#!/bin/sh\n/bin/sleep 60 & echo $! > ${pidFile}\nwhile read -r am sys drv feat; do echo "# decline" >&2; done\n`);
  const r = e.build(['-j', '1', '--build-hook', hook, d.drv]);
  assert.equal(r.code, 0, r.stderr);
  const pid = readPid(pidFile);
  assert.ok(await gone(pid), `the hook's leftover process ${pid} still runs after drover-build exited`);

  const d2 = await e.drv({ name: 'hook-leftover-accept', cmd: 'echo x > $out' });
  const pidFile2 = path.join(e.dir, 'leftover-accept.pid');
  const hook2 = e.script(
    'leftover-accept-hook',
    `#!/bin/sh\nread -r am sys drv feat; echo "# accept" >&2; read -r inputs; read -r outputs\nfor o in $outputs; do echo built > "$o"; done\n/bin/sleep 60 & echo $! > ${pidFile2}\nexit 0\n`,
  );
  const r2 = e.build(['-j', '1', '--build-hook', hook2, d2.drv]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.ok(e.isValid(d2.out.out!));
  const pid2 = readPid(pidFile2);
  assert.ok(await gone(pid2), `the accepting hook's leftover process ${pid2} still runs after drover-build exited`);
});

test('a hook that ignores SIGTERM after its reply timeout does not outlive drover-build', async () => {
  const d = await e.drv({ name: 'hook-ignores-term', cmd: 'echo x > $out' });
  const pidFile = path.join(e.dir, 'ignores-term.pid');
  const hook = e.script('ignores-term-hook', `#!/bin/sh\necho $$ > ${pidFile}\ntrap "" TERM\nread -r am sys drv feat\nexec 2>&-\n/bin/sleep 60\n`);
  const t0 = Date.now();
  const r = e.build(['-j', '1', '--hook-timeout', '1', '--build-hook', hook, d.drv]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /build hook failed for '.*hook-ignores-term\.drv': the build hook did not answer within 1 seconds/);
  assert.ok(Date.now() - t0 < 20_000);
  const pid = readPid(pidFile);
  assert.ok(await gone(pid, 1000), `the hook ${pid} still runs after drover-build exited`);
});

test('a builder whose environment is too large to exec (-L): a build failure naming the derivation, exit 100, no scratch dir left', async () => {
  const d = await e.drv({ name: 'huge-env', cmd: 'echo x > $out', env: { big: 'x'.repeat(3 << 20) } });
  const r = e.build(['-L', d.drv]);
  assert.equal(r.code, 100, r.stderr);
  assert.match(r.stderr, /^drover-build: error: builder for '.*-huge-env\.drv' failed with could not start builder '\/bin\/sh': spawn E2BIG$/m);
  const rb = e.build(['-L', '--sandbox', 'bwrap', d.drv]);
  if (/--sandbox bwrap: /.test(rb.stderr)) return; // bwrap cannot run here
  assert.equal(rb.code, 100, rb.stderr);
  assert.match(rb.stderr, /builder for '.*-huge-env\.drv' failed with could not start builder/);
  assert.deepEqual(fs.readdirSync(e.t.storeDir).filter((f) => f.endsWith('.drover-sandbox')), [], 'the sandbox scratch dir is removed');
});

test('a hand-made .drv with two outputs at one path is refused (exit 2) instead of waiting for its own lock', async () => {
  // Registration by drover-store checks output paths; a .drv that reached the DB some other
  // way (registered without checks) is read as it is.
  const out = path.join(e.t.storeDir, '0123456789abcdfghijklmnpqrsvwxyz-two-outs');
  const drv: Derivation = {
    outputs: { dev: { path: out }, out: { path: out } },
    inputDrvs: {},
    inputSrcs: [],
    system: SYSTEM,
    builder: '/bin/sh',
    args: ['-c', 'echo > $out'],
    env: { dev: out, out },
  };
  const drvPath = path.join(e.t.storeDir, '1123456789abcdfghijklmnpqrsvwxyz-two-outs.drv');
  fs.mkdirSync(e.t.storeDir, { recursive: true });
  fs.writeFileSync(drvPath, serializeDerivation(drv));
  const { hash, size } = hashPath(drvPath);
  e.store.db.registerValidPaths([{ path: drvPath, narHash: hash, narSize: size, references: [] }]);
  // Before, it span waiting for its own lock, deaf to SIGTERM: only SIGKILL ends it.
  const run = e.start(['--sandbox', 'none', drvPath]);
  const kill = setTimeout(() => run.child.kill('SIGKILL'), 15_000);
  const r = await run.result;
  clearTimeout(kill);
  assert.equal(r.code, 2, r.stderr.slice(0, 2000));
  assert.match(r.stderr, new RegExp(`^drover-build: error: derivation '${drvPath.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}': outputs 'dev' and 'out' have the same path '${out}'$`, 'm'));
});

test('--max-silent-time beyond what a hook can be told is refused, not passed on as 1e+21', async () => {
  const d = await e.drv({ name: 'huge-silence', cmd: 'echo x > $out' });
  const r = e.build(['--max-silent-time', '1000000000000000000000', d.drv]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^drover-build: error: --max-silent-time must be at most 2147483 seconds/m);
});

test('drover-hook-ssh: an output stream refused early, with much more behind it, fails at once with what is wrong with it', async () => {
  const farm = await Farm.start({ machines: 1, remoteEnv: { DROVER_NO_SYNC: '1', DROVER_SANDBOX: 'none' } });
  try {
    const m = farm.machines[0]!;
    // engine=drover-cli: the remote's `drover-store export` answers garbage, then a MiB more,
    // which nobody reads once the local import has refused the first bytes.
    const noise = wrapperDir(farm, 'noisy-export', 'drover-store', 'export', 'echo "not an export stream"; /usr/bin/head -c 1048576 /dev/zero; exit 0');
    const machines = farm.machinesFile([m.line({ maxJobs: 1, uriOptions: { 'remote-program': noise, engine: 'drover-cli' } })], 'noisy-machines');
    const d = await addDrv(farm, { name: 'noisy', cmd: 'echo n > $out' });
    const before = allValidLocally(farm);
    const r = hookBuild(farm, machines, d, { DROVER_HOOK_SSH_STALL_TIMEOUT: '30' });
    assert.equal(r.status, 1, r.stderr);
    // Before: 'internal error: the command stopped before it finished', or a stall after 30 s.
    assert.match(r.stderr, /^drover-hook-ssh: error: building '.*-noisy\.drv' on ssh:\/\/\S+ failed: the output stream from ssh:\/\/\S+: at byte 0: .*; nothing was registered$/m);
    assert.ok(r.ms < 25_000, `took ${r.ms} ms: waited for the stall timeout`);
    assert.deepEqual(validLocally(farm, [d.out]), []);
    assert.deepEqual(allValidLocally(farm), before);
  } finally {
    await farm.close();
  }
});

test("'-' with an empty or blank standard input says that stdin named nothing", () => {
  for (const input of ['', '\n  \n\t\n']) {
    const r = e.build(['-'], { input });
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr, 'drover-build: error: standard input names no derivation (one .drv path a line)\n');
  }
  const none = e.build([]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /name at least one derivation \(DRV\.\.\.\), or - to read them from stdin/);
});

test('drover-hook-ssh: a global option given twice counts once (the last), for people\'s commands too; a bad agent --idle or --socket is a usage error', () => {
  const hook = path.join(BIN_DIR, 'drover-hook-ssh');
  const m = path.join(e.dir, 'twice-machines');
  fs.writeFileSync(m, 'ssh://root@127.0.0.1:9 x86_64-linux - 2\n');
  const run = (args: string[]) => spawnSync(hook, args, { env: { ...e.env, DROVER_DEBUG: '1' }, encoding: 'utf8', timeout: 20_000 });
  // Was: TypeError 'The "paths[0]" argument must be of type string. Received an instance of Array', exit 1.
  const r = run(['status', '--machines', path.join(e.dir, 'nope'), '--machines', m, '--state-dir', e.t.stateDir, '--state-dir', e.t.stateDir]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^machines file: .*twice-machines \(1 machine\)$/m);
  assert.doesNotMatch(r.stderr, /TypeError|at .*:\d+:\d+/);
  const a = run(['agent', '--idle', 'abc', '--socket', path.join(e.dir, 'sock')]);
  assert.equal(a.status, 2, a.stderr);
  assert.equal(a.stderr, "drover-hook-ssh: error: --idle must be a whole number of seconds up to 1000000, got 'abc'\n");
  // A number is no socket path: Node would listen on that TCP port, on every interface.
  const port = run(['agent', '--idle', '1', '--socket', '18080']);
  assert.equal(port.status, 2, port.stderr);
  assert.equal(port.stderr, "drover-hook-ssh: error: agent --socket must be an absolute path, got '18080'\n");
});
