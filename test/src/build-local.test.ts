// drover-build's local builds as a user runs them: environment, outputs, references,
// registration, logs, failures and their exit codes, bad input.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Hash } from '@drover/store';
import { BuildEnv, SYSTEM, traceLines } from './build-harness.js';

const e = new BuildEnv();
after(() => e.cleanup());

test('builds a derivation with Nix\'s environment and prints its output path', async () => {
  const a = await e.drv({
    name: 'env-check',
    cmd: 'for v in PATH HOME NIX_STORE NIX_BUILD_CORES NIX_BUILD_TOP TMPDIR TEMPDIR TMP TEMP PWD NIX_LOG_FD TERM out name; do eval "echo $v=\\$$v"; done > $out; echo "cwd=$(/bin/pwd)" >> $out',
    env: { custom: 'x y' },
  });
  const r = e.build(['--cores', '3', a.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${a.out.out}\n`);
  const vars = Object.fromEntries(
    fs
      .readFileSync(a.out.out!, 'utf8')
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  assert.equal(vars.PATH, '/path-not-set');
  assert.equal(vars.HOME, '/homeless-shelter');
  assert.equal(vars.NIX_STORE, e.t.storeDir);
  assert.equal(vars.NIX_BUILD_CORES, '3');
  assert.equal(vars.NIX_LOG_FD, '2');
  assert.equal(vars.TERM, 'xterm-256color');
  assert.equal(vars.out, a.out.out);
  assert.equal(vars.name, 'env-check');
  const top = vars.NIX_BUILD_TOP!;
  assert.match(top, /drover-build-/);
  for (const v of ['TMPDIR', 'TEMPDIR', 'TMP', 'TEMP', 'PWD', 'cwd']) assert.equal(vars[v], top, v);
  // The build dir is gone afterwards, and the output is valid with its deriver.
  assert.equal(fs.existsSync(top), false);
  assert.equal(e.isValid(a.out.out!), true);
  assert.equal(e.store.db.queryPathInfo(a.out.out!)!.deriver, a.drv);
});

test('outputs are canonical, scanned for references and registered together', async () => {
  const dep = await e.drv({ name: 'dep', cmd: 'echo dep > $out' });
  const unrelated = await e.drv({ name: 'unrelated', cmd: 'echo u > $out' });
  assert.equal(e.build([unrelated.drv]).code, 0);
  const two = await e.drv({
    name: 'two',
    outputs: ['out', 'dev'],
    inputs: [dep],
    // out mentions dep and itself; dev mentions out (in a file and in a symlink target); neither mentions unrelated.
    cmd: '/bin/mkdir $out $dev; echo $dep $out > $out/f; /bin/chmod 755 $out/f; /bin/ln -s $out $dev/link; echo nothing > $dev/g',
    env: { dep: dep.out.out! },
  });
  const r = e.build([two.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n').sort(), [two.out.out!, two.out.dev!].sort());
  const out = e.store.db.queryPathInfo(two.out.out!)!;
  const dev = e.store.db.queryPathInfo(two.out.dev!)!;
  assert.deepEqual(out.references, [dep.out.out!, two.out.out!].sort());
  assert.deepEqual(dev.references, [two.out.out!]);
  assert.equal(out.deriver, two.drv);
  assert.equal(out.registrationTime, dev.registrationTime);
  for (const p of [two.out.out!, `${two.out.out}/f`, two.out.dev!, `${two.out.dev}/g`]) {
    const st = fs.lstatSync(p);
    assert.equal(st.mtimeMs, 1000, p);
    assert.equal(st.mode & 0o222, 0, `${p} is read-only`);
  }
  assert.equal(fs.lstatSync(`${two.out.out}/f`).mode & 0o777, 0o555);
  assert.equal(fs.lstatSync(`${two.out.dev}/g`).mode & 0o777, 0o444);
});

test('a reference split across read chunks is found', async () => {
  const dep = await e.drv({ name: 'dep-big', cmd: 'echo > $out' });
  // 1 MiB - 10 bytes of padding puts the dependency's hash across the first chunk boundary.
  const big = await e.drv({
    name: 'big',
    inputs: [dep],
    cmd: '/usr/bin/head -c 1048566 /dev/zero > $out; echo $dep >> $out',
    env: { dep: dep.out.out! },
  });
  assert.equal(e.build([big.drv]).code, 0);
  assert.deepEqual(e.store.db.queryPathInfo(big.out.out!)!.references, [dep.out.out!]);
});

test('a DAG builds inputs first, each derivation once, and a second run builds nothing', async () => {
  const counter = path.join(e.dir, 'dag-count');
  const leaf = await e.drv({ name: 'leaf', cmd: `echo leaf >> ${counter}; echo > $out` });
  const mid1 = await e.drv({ name: 'mid1', inputs: [leaf], cmd: `echo mid1 >> ${counter}; /bin/cat $leaf > $out`, env: { leaf: leaf.out.out! } });
  const mid2 = await e.drv({ name: 'mid2', inputs: [leaf], cmd: `echo mid2 >> ${counter}; /bin/cat $leaf > $out`, env: { leaf: leaf.out.out! } });
  const top = await e.drv({ name: 'top', inputs: [mid1, mid2], cmd: `echo top >> ${counter}; echo > $out` });
  const r = e.build(['--print-build-trace', '-j', '2', top.drv, mid1.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${top.out.out}\n${mid1.out.out}\n`);
  const order = fs.readFileSync(counter, 'utf8').trim().split('\n');
  assert.equal(order.length, 4);
  assert.equal(order[0], 'leaf');
  assert.equal(order[3], 'top');
  const t = traceLines(r.stderr);
  assert.equal(t.filter((l) => l[0] === 'build-started').length, 4);
  assert.deepEqual(t.find((l) => l[0] === 'build-started' && l[1] === leaf.drv)!.slice(2, 4), [leaf.out.out!, SYSTEM]);
  assert.equal(t.filter((l) => l[0] === 'build-succeeded').length, 4);
  const again = e.build(['--print-build-trace', top.drv]);
  assert.equal(again.code, 0);
  assert.equal(again.stdout, `${top.out.out}\n`);
  assert.equal(traceLines(again.stderr).length, 0);
  assert.equal(fs.readFileSync(counter, 'utf8').trim().split('\n').length, 4);
});

test('paths can come from stdin with -', async () => {
  const a = await e.drv({ name: 'stdin-a', cmd: 'echo a > $out' });
  const b = await e.drv({ name: 'stdin-b', cmd: 'echo b > $out' });
  const r = e.build(['-'], { input: `${a.drv}\n\n${b.drv}\n` });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${a.out.out}\n${b.out.out}\n`);
});

test('--dry-run lists what would be built and builds nothing', async () => {
  const a = await e.drv({ name: 'dry-a', cmd: 'echo a > $out' });
  const b = await e.drv({ name: 'dry-b', inputs: [a], cmd: 'echo b > $out' });
  const r = e.build(['--dry-run', b.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /these 2 derivations will be built:/);
  assert.ok(r.stderr.indexOf(a.drv) < r.stderr.indexOf(b.drv), 'inputs first');
  assert.equal(fs.existsSync(a.out.out!), false);
  assert.equal(e.build([a.drv]).code, 0);
  const r2 = e.build(['--dry-run', a.drv]);
  assert.match(r2.stderr, /these 1 paths are already valid:/);
});

test('a failing builder: exit 100, the last 25 log lines, a log file, build-failed trace', async () => {
  const f = await e.drv({ name: 'fails', cmd: 'i=1; while [ $i -le 30 ]; do echo "line $i"; i=$((i+1)); done; echo oops >&2; exit 3' });
  const r = e.build(['--print-build-trace', f.drv]);
  assert.equal(r.code, 100, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /builder for '.*fails\.drv' failed with exit code 3/);
  assert.match(r.stderr, /last 25 log lines:/);
  assert.doesNotMatch(r.stderr, /> line 6\n/);
  assert.match(r.stderr, /> line 7\n/);
  assert.match(r.stderr, /> oops/);
  const failed = traceLines(r.stderr).find((l) => l[0] === 'build-failed')!;
  assert.deepEqual(failed.slice(1, 4), [f.drv, f.out.out!, '3']);
  const started = traceLines(r.stderr).find((l) => l[0] === 'build-started')!;
  const log = fs.readFileSync(started[4]!, 'utf8');
  assert.match(log, /^line 1\n/);
  assert.equal(e.isValid(f.out.out!), false);
});

test('-L streams the log prefixed with the derivation name', async () => {
  const a = await e.drv({ name: 'chatty', cmd: 'echo hello; echo world >&2; echo > $out' });
  const r = e.build(['-L', a.drv]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^chatty> hello$/m);
  assert.match(r.stderr, /^chatty> world$/m);
});

test('a missing output is a permanent failure', async () => {
  const a = await e.drv({ name: 'no-dev', outputs: ['out', 'dev'], cmd: 'echo > $out' });
  const r = e.build([a.drv]);
  assert.equal(r.code, 100);
  assert.match(r.stderr, /failed to produce output path '.*-no-dev-dev'/);
  assert.equal(e.isValid(a.out.out!), false, 'nothing of the derivation is registered');
});

test('--max-silent-time and --timeout kill the whole process group (exit 101)', async () => {
  const marker = path.join(e.dir, 'silent-child');
  const silent = await e.drv({ name: 'silent', cmd: `(/bin/sleep 3; echo > ${marker}) & echo started; /bin/sleep 30` });
  const t0 = Date.now();
  const r = e.build(['--print-build-trace', '--max-silent-time', '1', silent.drv]);
  assert.equal(r.code, 101, r.stderr);
  assert.ok(Date.now() - t0 < 10_000);
  assert.match(r.stderr, /timed out after 1 seconds of silence/);
  const slow = await e.drv({ name: 'slow', cmd: 'while :; do echo tick; /bin/sleep 0.2; done' });
  const r2 = e.build(['--timeout', '1', slow.drv]);
  assert.equal(r2.code, 101);
  assert.match(r2.stderr, /timed out after 1 seconds/);
  await new Promise((res) => setTimeout(res, 3500));
  assert.equal(fs.existsSync(marker), false, 'the background child was killed with its builder');
});

test('fixed outputs: the right hash registers with ca, a wrong one reports both in SRI (exit 1)', async () => {
  const content = 'fixed content\n';
  const hex = createHash('sha256').update(content).digest('hex');
  const ok = await e.drv({ name: 'fixed-ok', cmd: `printf 'fixed content\\n' > $out`, fixed: { hashAlgo: 'sha256', hash: hex } });
  const r = e.build([ok.drv]);
  assert.equal(r.code, 0, r.stderr);
  const info = e.store.db.queryPathInfo(ok.out.out!)!;
  assert.equal(info.ca, `fixed:sha256:${new Hash('sha256', Buffer.from(hex, 'hex')).toString('base32')}`);
  const bad = await e.drv({ name: 'fixed-bad', cmd: `printf 'other\\n' > $out`, fixed: { hashAlgo: 'sha256', hash: hex } });
  const r2 = e.build(['--print-build-trace', bad.drv]);
  assert.equal(r2.code, 1, r2.stderr);
  const want = `sha256-${Buffer.from(hex, 'hex').toString('base64')}`;
  const got = `sha256-${createHash('sha256').update('other\n').digest('base64')}`;
  assert.ok(r2.stderr.includes(want) && r2.stderr.includes(got), r2.stderr);
  assert.ok(traceLines(r2.stderr).some((l) => l[0] === 'build-failed' && l.join(' ').includes('hash mismatch')));
  assert.equal(e.isValid(bad.out.out!), false);
});

test('another system: says which system and features were missing, i686-linux builds here', async () => {
  const arm = await e.drv({ name: 'elsewhere', system: 'riscv64-linux', cmd: 'echo > $out', env: { requiredSystemFeatures: 'kvm gpu' } });
  const r = e.build(['--system-features', 'kvm', '--print-build-trace', arm.drv]);
  assert.equal(r.code, 100, r.stderr);
  assert.match(r.stderr, /needs a 'riscv64-linux' machine with the system features \{gpu\}/);
  assert.match(r.stderr, /this is a 'x86_64-linux' machine|this is a 'aarch64-linux' machine/);
  if (SYSTEM === 'x86_64-linux') {
    const i686 = await e.drv({ name: 'i686', system: 'i686-linux', cmd: 'echo > $out' });
    assert.equal(e.build([i686.drv]).code, 0);
  }
});

test('-j 0: nothing builds without a hook, except preferLocalBuild', async () => {
  const a = await e.drv({ name: 'j0', cmd: 'echo > $out' });
  const r = e.build(['-j', '0', a.drv]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--max-jobs is 0 and there is no build hook/);
  const p = await e.drv({ name: 'j0-local', cmd: 'echo > $out', env: { preferLocalBuild: '1' } });
  assert.equal(e.build(['-j', '0', p.drv]).code, 0);
});

test('--cache-failures remembers a permanent failure until it is cleared', async () => {
  const counter = path.join(e.dir, 'cache-count');
  const f = await e.drv({ name: 'cached', cmd: `echo x >> ${counter}; exit 1` });
  assert.equal(e.build(['--cache-failures', f.drv]).code, 100);
  const r = e.build(['--cache-failures', '--print-build-trace', f.drv]);
  assert.equal(r.code, 100);
  assert.match(r.stderr, /cached failure/);
  assert.equal(fs.readFileSync(counter, 'utf8'), 'x\n', 'not built the second time');
  assert.equal(e.build([f.drv]).code, 100, 'without the flag it is tried again');
  assert.equal(fs.readFileSync(counter, 'utf8'), 'x\nx\n');
});

test('bad input: exit 2, the problem named, the store unchanged', async () => {
  const before = fs.readdirSync(e.t.storeDir).sort();
  const cases: [string[], RegExp][] = [
    [['/etc/passwd'], /not a derivation/],
    [[`${e.t.storeDir}/garbage.drv`], /does not start with a 32-character/],
    [[`${e.t.storeDir}/00000000000000000000000000000000-missing.drv`], /does not exist|not valid/],
    [['--max-jobs', '-3', 'x.drv'], /--max-jobs/],
    [['--max-silent-time', 'soon', 'x.drv'], /--max-silent-time must be a number, got 'soon'/],
    [['--sandbox', 'maybe', 'x.drv'], /sandbox/i],
    [[], /at least one derivation/],
    // What yargs refuses itself (a flag missing its value) is a usage error too.
    [['x.drv', '-j'], /Not enough arguments following: j/],
    [['x.drv', '--bogus'], /Unknown argument/],
  ];
  for (const [args, re] of cases) {
    const r = e.build(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^drover-build: error: /m);
    assert.match(r.stderr, re);
  }
  // A hostile .drv on disk (truncated ATerm) named like a store path.
  const a = await e.drv({ name: 'truncated', cmd: 'echo > $out' });
  const text = fs.readFileSync(a.drv, 'utf8');
  fs.chmodSync(a.drv, 0o644);
  fs.writeFileSync(a.drv, text.slice(0, 40));
  const r = e.build([a.drv]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(a.drv.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  fs.writeFileSync(a.drv, text);
  assert.deepEqual(
    fs.readdirSync(e.t.storeDir).filter((n) => !n.includes('truncated')).sort(),
    before.filter((n) => !n.includes('truncated')).sort(),
  );
});

test('outputs that refer to each other are a failed build, not a broken registration', async () => {
  const a = await e.drv({ name: 'cyclic', outputs: ['out', 'dev'], cmd: 'echo $dev > $out; echo $out > $dev' });
  const r = e.build([a.drv]);
  assert.equal(r.code, 100, r.stderr);
  assert.match(r.stderr, /cycle detected in the references/);
  assert.equal(e.isValid(a.out.out!), false);
  assert.equal(e.isValid(a.out.dev!), false);
});

test('a derivation named by a relative path, with a doubled slash or through a symlink is the store path it leads to, as in Nix', async () => {
  const a = await e.drv({ name: 'named-oddly', cmd: 'echo > $out' });
  const link = path.join(e.dir, 'drv-link');
  fs.symlinkSync(a.drv, link);
  for (const [args, cwd] of [
    [[link], undefined],
    [[`./${path.basename(a.drv)}`], e.t.storeDir],
    [[a.drv.replace(`${e.t.storeDir}/`, `${e.t.storeDir}//`)], undefined],
  ] as const) {
    const r = e.build([...args], { cwd });
    assert.equal(r.code, 0, `${args}: ${r.stderr}`);
    assert.equal(r.stdout, `${a.out.out}\n`);
  }
  // A link to something that is not a derivation is still refused as such.
  const notDrv = path.join(e.dir, 'out-link');
  fs.symlinkSync(a.out.out!, notDrv);
  const r = e.build([notDrv]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /is not a derivation/);
});
