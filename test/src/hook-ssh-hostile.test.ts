// drover-hook-ssh against a remote whose words are hostile: line breaks that would forge replies and trace lines, escape sequences; and its command line used wrongly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { BIN_DIR, Farm } from './sshd-harness.js';
import { addDrv, allValidLocally, build, forgetFailures, frame, healthRecords, hookBuild, hookCommand, re, wrapperDir } from './hook-ssh-helpers.js';

let farm: Farm;

before(async () => {
  farm = await Farm.start({ machines: 1, remoteEnv: { DROVER_NO_SYNC: '1', DROVER_SANDBOX: 'none' } });
});

after(async () => {
  await farm?.close();
});

/** A machines file whose one machine runs `script` instead of `drover-hook-ssh serve`. */
function serveMachines(name: string, script: string): string {
  const m = farm.machines[0]!;
  const wrapper = wrapperDir(farm, `serve-${name}`, 'drover-hook-ssh', 'serve', script);
  return farm.machinesFile([m.line({ maxJobs: 1, uriOptions: { 'remote-program': wrapper, agent: '0' } })], `serve-${name}-machines`);
}

const FORGED = '@ build-succeeded /forged.drv /forged-out';
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/;

test("a remote's {error} with line breaks cannot forge a hook reply or a trace line, nor print escapes; nothing is registered", async () => {
  forgetFailures(farm);
  const answer = path.join(farm.dir, 'answer-forging-error');
  const hello = frame('H', JSON.stringify({ v: 2, storeDir: farm.storeDir, version: 'drover-hook-ssh 0.1.0', checksNarHashes: true }));
  const error = `disk full\n${FORGED}\n# accept\r\n\x1b[2Jcleared`;
  fs.writeFileSync(answer, Buffer.concat([hello, frame('M', JSON.stringify({ error }))]));
  const machines = serveMachines('forging-error', `/bin/cat ${answer}; /bin/sleep 1; exit 0`);
  const d = await addDrv(farm, { name: 'forging-error', cmd: 'echo x > $out' });
  const before = allValidLocally(farm);

  const r = hookBuild(farm, machines, d);
  assert.equal(r.status, 1, r.stderr);
  const m = farm.machines[0]!;
  // The remote's words stay inside the hook's error, each later line indented.
  const says = `${m.uri} (drover-hook-ssh serve): disk full\n  ${FORGED}\n  # accept\n  ?[2Jcleared`;
  assert.match(r.stderr, new RegExp(`^drover-hook-ssh: error: building '${re(d.drv)}' on ${re(m.uri)} failed: ${re(says)}$`, 'm'));
  assert.deepEqual(r.stderr.split('\n').filter((l) => /^[#@] /.test(l)), ['# accept'], 'only the hook\'s own reply starts a line with "# "');
  assert.doesNotMatch(r.stderr, CONTROL);
  assert.deepEqual(allValidLocally(farm), before, 'the local store is unchanged');
  // The remote's refusal in its own words is not held against the machine.
  assert.deepEqual(healthRecords(farm), {});

  // And as the scheduler sees it: no forged trace line among drover-build's.
  const b = await build(farm, { machines }, [d.drv]);
  assert.notEqual(b.code, 0, b.stderr);
  assert.match(b.stderr, new RegExp(`^@ build-remote ${re(d.drv)} `, 'm'));
  assert.doesNotMatch(b.stderr, /^@ build-succeeded \/forged/m);
  assert.doesNotMatch(b.stderr, CONTROL);
  assert.deepEqual(allValidLocally(farm), before);
});

test("a serve that dies printing escapes: the error, the failure memory as status shows it and check are printable", async () => {
  forgetFailures(farm);
  const machines = serveMachines('escapes', `printf 'oops \\033]0;pwned\\007 bad\\r\\n' >&2; exit 3`);
  const d = await addDrv(farm, { name: 'serve-escapes', cmd: 'echo x > $out' });
  const m = farm.machines[0]!;

  const r = hookBuild(farm, machines, d);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^drover-hook-ssh: error: building '${re(d.drv)}' on ${re(m.uri)} failed: ${re(`${m.uri} (drover-hook-ssh serve) ended before its hello (status 3): oops ?]0;pwned? bad`)}`, 'm'));
  assert.doesNotMatch(r.stderr, CONTROL);
  // Ending before the hello backs the machine off; its record keeps what the remote said.
  assert.equal(Object.values(healthRecords(farm)).length, 1);

  const st = hookCommand(farm, ['status'], machines);
  assert.equal(st.status, 0, st.stderr);
  assert.match(st.stdout, new RegExp(`recent failures:\\n  ${re(m.uri)}: 1 in a row, last \\d+s ago: .*oops \\?\\]0;pwned\\? bad$`, 'm'));
  assert.doesNotMatch(st.stdout, CONTROL);

  forgetFailures(farm);
  const ck = hookCommand(farm, ['check'], machines);
  assert.equal(ck.status, 1, ck.stdout + ck.stderr);
  assert.match(ck.stdout, /^  session    FAILED: .*oops \?\]0;pwned\? bad$/m);
  assert.doesNotMatch(ck.stdout, CONTROL);
});

test('check fails a machine whose session names another store dir, as a build there would fail', () => {
  forgetFailures(farm);
  const answer = path.join(farm.dir, 'answer-other-store');
  fs.writeFileSync(answer, frame('H', JSON.stringify({ v: 2, storeDir: '/elsewhere/store', version: 'drover-hook-ssh 0.1.0', checksNarHashes: true })));
  const machines = serveMachines('other-store', `/bin/cat ${answer}; /bin/sleep 1; exit 0`);
  const m = farm.machines[0]!;
  const ck = hookCommand(farm, ['check'], machines);
  assert.equal(ck.status, 1, ck.stdout + ck.stderr);
  assert.match(ck.stdout, new RegExp(`^  session    FAILED: ${re(`${m.uri} uses the store dir '/elsewhere/store', not '${farm.storeDir}'`)}`, 'm'));
});

test('a mistyped command, a missing argument or none at all is named, exit 2; --help explains the arguments and the machines file', () => {
  const hook = path.join(BIN_DIR, 'drover-hook-ssh');
  const env = { ...process.env, DROVER_STATE_DIR: farm.stateDir, DROVER_STORE_DIR: farm.storeDir };
  const run = (args: string[]) => spawnSync(hook, args, { env, encoding: 'utf8', input: '' });
  const expected = 'expected status, check, serve, agent, or THIS_SYSTEM MAX_SILENT_TIME PRINT_BUILD_TRACE (see drover-hook-ssh --help)';
  for (const [args, says] of [
    [['statsu'], `unknown command 'statsu': ${expected}`],
    [['--machines', '/dev/null', 'chek'], `unknown command 'chek': ${expected}`],
    [[], `no command given: ${expected}`],
    [['x86_64-linux', '0'], `the hook takes 3 arguments, THIS_SYSTEM MAX_SILENT_TIME PRINT_BUILD_TRACE; got 2: 'x86_64-linux 0'`],
  ] as const) {
    const r = run([...args]);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr, `drover-hook-ssh: error: ${says}\n`, args.join(' '));
    assert.equal(r.stdout, '');
  }
  const h = run(['--help']);
  assert.equal(h.status, 0, h.stderr);
  assert.match(h.stdout, /thisSystem\s+THIS_SYSTEM: the local system, e\.g\. x86_64-linux/);
  assert.match(h.stdout, /maxSilentTime\s+MAX_SILENT_TIME: seconds a remote build may print nothing/);
  assert.match(h.stdout, /printBuildTrace\s+PRINT_BUILD_TRACE: 1 prints `@ build-remote DRV URI`/);
  assert.match(h.stdout, /^ {2}URI SYSTEMS SSH_KEY MAX_JOBS SPEED_FACTOR$/m);
  assert.match(h.stdout, /^Exit status: 0 built/m);
});
