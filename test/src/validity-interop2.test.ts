// Real Nix 2.8 and drover taking turns on one store: Nix's maintenance (gc, optimise, sign)
// between drover's commands, and Nix's collector running while drover writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { STORE_BIN, tempStore } from '@drover/store/testing';
import { drover, exportStream, makeChain, nix, nixEnv, ok } from './validity-helpers.js';

/** A running process with its output collected; `done` settles when it exits. */
function start(cmd: string, args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const res = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (res.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (res.stderr += d.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, ...res })));
  return { child, res, done };
}

async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const NIX_EXPR = `
let
  dep = derivation { name = "dep"; system = builtins.currentSystem; builder = "/bin/sh"; args = ["-c" "echo dep > $out"]; };
in derivation {
  name = "top"; system = builtins.currentSystem; builder = "/bin/sh"; outputs = ["out" "dev"];
  args = ["-c" "/bin/mkdir $out; echo \${dep} > $out/uses-dep; echo dep > $out/same; echo \${dep} > $dev"];
}
`;

/** A temporary store where real Nix instantiated NIX_EXPR: the store, Nix's env, the .drv. */
function instantiated(t: { after(fn: () => void): void }, prefix: string) {
  const s = tempStore(prefix);
  t.after(s.cleanup);
  const nenv = nixEnv(s.dir, s.storeDir, s.stateDir);
  const expr = path.join(s.dir, 'top.nix');
  fs.writeFileSync(expr, NIX_EXPR);
  const drv = ok(nix(nenv, 'nix-instantiate', [expr]), 'nix-instantiate').stdout.trim();
  return { s, nenv, drv };
}

test('query --json prints what nix path-info --json prints for paths Nix built and signed: ultimate, signatures', (t) => {
  const { s, nenv, drv } = instantiated(t, 'drover-interop2-json-');
  ok(nix(nenv, 'nix-build', ['--no-out-link', drv]), 'nix-build');
  const outs = ok(nix(nenv, 'nix-store', ['-q', '--outputs', drv]), 'outputs').stdout.trim().split('\n');
  const dep = ok(nix(nenv, 'nix-store', ['-q', '--references', outs.find((o) => o.endsWith('-top'))!]), 'references').stdout.trim();
  const src = path.join(s.dir, 'src');
  fs.writeFileSync(src, 'added\n');
  const added = ok(drover(s.env, ['add', src]), 'drover add').stdout.trim();
  // Two keys on one path (Nix keeps them as a sorted set), one on a path Nix did not build.
  for (const k of ['zkey', 'akey']) {
    ok(nix(nenv, 'nix-store', ['--generate-binary-cache-key', k, path.join(s.dir, `${k}.sec`), path.join(s.dir, `${k}.pub`)]), 'generate key');
  }
  ok(nix(nenv, 'nix', ['store', 'sign', '-k', path.join(s.dir, 'zkey.sec'), dep, added]), 'nix store sign');
  ok(nix(nenv, 'nix', ['store', 'sign', '-k', path.join(s.dir, 'akey.sec'), dep]), 'nix store sign');
  // (nix path-info takes a .drv for its outputs, so only outputs and sources are compared.)
  const paths = [...outs, dep, added];
  const n = ok(nix(nenv, 'nix', ['path-info', '--json', ...paths]), 'nix path-info --json').stdout;
  assert.match(n, /"ultimate":true/);
  assert.match(n, /"signatures":\["akey:[^"]+","zkey:/);
  assert.equal(ok(drover(s.env, ['query', '--json', ...paths]), 'query --json').stdout, `${n}\n`);
});

test('a nix-store --gc started while drover imports waits for the import, and keeps what a root holds', async (t) => {
  const s = tempStore('drover-interop2-gc-');
  t.after(s.cleanup);
  const nenv = nixEnv(s.dir, s.storeDir, s.stateDir);
  // A root for the chain's top (dangling until the import lands), and garbage beside it.
  const chain = makeChain(s.storeDir, 'gcimp', 40, 3000);
  fs.mkdirSync(path.join(s.stateDir, 'gcroots'), { recursive: true });
  fs.symlinkSync(chain[chain.length - 1]!.path, path.join(s.stateDir, 'gcroots', 'keep'));
  const junk = path.join(s.dir, 'junk');
  fs.writeFileSync(junk, 'garbage\n');
  const garbage = ok(drover(s.env, ['add', junk]), 'add').stdout.trim();
  const stream = exportStream(chain);
  const imp = start(process.execPath, [STORE_BIN, 'import'], s.env);
  t.after(() => imp.child.kill('SIGKILL'));
  // Half the stream in: the import is restoring into its scratch directory in the store dir.
  imp.child.stdin.write(stream.subarray(0, stream.length >> 1));
  const scratch = () => fs.readdirSync(s.storeDir).filter((n) => n.startsWith('.drover-tmp-'));
  await until('the import to make its scratch directory', () => scratch().length > 0);
  const gc = start('nix-store', ['--gc'], nenv);
  t.after(() => gc.child.kill('SIGKILL'));
  // Either the collector waits for the import's hold on gc.lock, or it has run (and deleted
  // the scratch directory under the import's feet, as it did before drover took the lock).
  await until('the collector to wait or finish', () => /waiting for the big garbage collector lock/.test(gc.res.stderr) || gc.child.exitCode !== null);
  imp.child.stdin.end(stream.subarray(stream.length >> 1));
  const [i, g] = await Promise.all([imp.done, gc.done]);
  assert.equal(i.code, 0, `import failed: ${i.stderr}`);
  assert.equal(g.code, 0, `nix-store --gc failed: ${g.stderr}`);
  assert.match(g.stderr, /waiting for the big garbage collector lock/);
  assert.equal(i.stdout, chain.map((p) => `${p.path}\n`).join(''));
  // The collector ran after the import: the rooted chain stays, the unrooted path went.
  assert.equal(ok(drover(s.env, ['query', '--valid', ...chain.map((p) => p.path)]), 'query --valid').stdout.trim().split('\n').length, chain.length);
  assert.equal(drover(s.env, ['query', '--valid', garbage]).code, 1);
  assert.equal(fs.existsSync(garbage), false);
  assert.deepEqual(scratch(), []);
  const v = drover(s.env, ['verify', '--check-contents']);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  const nv = ok(nix(nenv, 'nix-store', ['--verify', '--check-contents']), 'nix-store --verify');
  assert.doesNotMatch(nv.stderr, /error|modified|disappeared|warning/i, nv.stderr);
});

test('drover add and derivation add while nix-store --gc runs in a loop: every add succeeds, nothing valid is missing', async (t) => {
  const s = tempStore('drover-interop2-gcloop-');
  t.after(s.cleanup);
  const nenv = nixEnv(s.dir, s.storeDir, s.stateDir);
  fs.mkdirSync(s.stateDir, { recursive: true });
  let stop = false;
  let collections = 0;
  const loop = (async () => {
    while (!stop) {
      const g = await start('nix-store', ['--gc'], nenv).done;
      assert.equal(g.code, 0, g.stderr);
      collections++;
    }
  })();
  const failures: string[] = [];
  try {
    for (let i = 0; i < 12; i++) {
      const dir = path.join(s.dir, `t${i}`);
      fs.mkdirSync(dir);
      for (let j = 0; j < 8; j++) fs.writeFileSync(path.join(dir, `f${j}`), `${i} ${j}\n`);
      const a = await start(process.execPath, [STORE_BIN, 'add', dir], s.env).done;
      if (a.code !== 0) failures.push(`add: ${a.stderr}`);
      const d = start(process.execPath, [STORE_BIN, 'derivation', 'add'], s.env);
      d.child.stdin.end(JSON.stringify({ name: `d${i}`, outputs: { out: {} }, system: 'x86_64-linux', builder: '/bin/sh', args: ['-c', `echo ${i} > $out`] }));
      const dr = await d.done;
      if (dr.code !== 0) failures.push(`derivation add: ${dr.stderr}`);
    }
  } finally {
    stop = true;
    await loop;
  }
  assert.ok(collections > 0);
  assert.deepEqual(failures, []);
  // Whatever the collector left valid is on disk.
  const v = drover(s.env, ['verify', '--check-contents']);
  assert.equal(v.code, 0, v.stdout + v.stderr);
});

test('after nix-store --optimise, --gc with a root and --delete, drover verifies, dumps and exports as Nix does', (t) => {
  const { s, nenv, drv } = instantiated(t, 'drover-interop2-maint-');
  const out = ok(nix(nenv, 'nix-build', ['--no-out-link', drv]), 'nix-build').stdout.trim().split('\n')[0]!;
  // drover adds files with the same contents as the build's, for the optimiser to link.
  const tree = path.join(s.dir, 'tree');
  fs.mkdirSync(tree);
  fs.writeFileSync(path.join(tree, 'same'), 'dep\n');
  fs.writeFileSync(path.join(tree, 'other'), 'other\n');
  const added = ok(drover(s.env, ['add', tree]), 'add').stdout.trim();
  const imported = makeChain(s.storeDir, 'opt', 3, 100);
  ok(drover(s.env, ['import'], exportStream(imported)), 'import');
  ok(nix(nenv, 'nix-store', ['--optimise']), 'nix-store --optimise');
  assert.ok(fs.readdirSync(path.join(s.storeDir, '.links')).length > 0, 'the optimiser linked files');
  assert.ok(fs.statSync(path.join(added, 'same')).nlink > 1);
  const v = drover(s.env, ['verify', '--check-contents']);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  const all = ok(nix(nenv, 'nix-store', ['-qR', drv, out, added, imported[2]!.path]), '-qR').stdout.trim().split('\n');
  assert.ok(ok(drover(s.env, ['export', ...all]), 'export').stdoutBytes.equals(ok(nix(nenv, 'nix-store', ['--export', ...all]), 'nix export').bytes));
  assert.ok(ok(drover(s.env, ['dump', added]), 'dump').stdoutBytes.equals(ok(nix(nenv, 'nix-store', ['--dump', added]), 'nix dump').bytes));

  // A root on the imported chain's top; the rest is garbage, deleted and invalidated.
  fs.mkdirSync(path.join(s.stateDir, 'gcroots'), { recursive: true });
  fs.symlinkSync(imported[2]!.path, path.join(s.stateDir, 'gcroots', 'chain'));
  ok(nix(nenv, 'nix-store', ['--delete', added]), 'nix-store --delete');
  assert.equal(drover(s.env, ['query', '--valid', added]).code, 1);
  ok(nix(nenv, 'nix-store', ['--gc']), 'nix-store --gc');
  assert.equal(ok(drover(s.env, ['query', '--requisites', imported[2]!.path]), '-R').stdout, imported.map((p) => `${p.path}\n`).join(''));
  for (const p of [drv, out, added]) assert.equal(drover(s.env, ['query', '--valid', p]).code, 1, `${p} is still valid after the collection`);
  assert.equal(ok(drover(s.env, ['dump-db']), 'dump-db').stdout, ok(nix(nenv, 'nix-store', ['--dump-db']), 'nix dump-db').stdout);
  assert.equal(drover(s.env, ['verify', '--check-contents']).code, 0);
  // drover writes again into the collected store: the same paths come back, and Nix agrees.
  assert.equal(ok(drover(s.env, ['add', tree]), 'add again').stdout.trim(), added);
  const nv = ok(nix(nenv, 'nix-store', ['--verify', '--check-contents']), 'nix-store --verify');
  assert.doesNotMatch(nv.stderr, /error|modified|disappeared|warning/i, nv.stderr);
});

test("a process's temporary roots (STATE/temproots/PID) keep paths from Nix's collector while it lives, by hash part; a dead one's are let go", async (t) => {
  const s = tempStore('drover-interop2-temproots-');
  t.after(s.cleanup);
  fs.mkdirSync(s.storeDir, { recursive: true });
  const nenv = nixEnv(s.dir, s.storeDir, s.stateDir);
  // Nothing is valid: Nix would delete every entry of the store dir but what the roots keep.
  const rooted = `${s.storeDir}/${'a'.repeat(32)}-being-built`;
  const scratch = `${rooted}.drover-sandbox`;
  const loose = `${s.storeDir}/${'b'.repeat(32)}-loose`;
  for (const d of [rooted, scratch, loose]) fs.mkdirSync(d);
  const TEMP_ROOTS_JS = new URL('../../packages/store/dist/temp-roots.js', import.meta.url).pathname;
  const script = `import { addTempRoots } from ${JSON.stringify(TEMP_ROOTS_JS)}; addTempRoots(${JSON.stringify(s.stateDir)}, [${JSON.stringify(rooted)}]); console.log('rooted'); setInterval(() => {}, 1000);`;
  const holder = start(process.execPath, ['--input-type=module', '-e', script], {});
  t.after(() => holder.child.kill('SIGKILL'));
  await until('the roots', () => holder.res.stdout.includes('rooted'));
  ok(nix(nenv, 'nix-store', ['--gc']), 'nix-store --gc');
  assert.ok(fs.existsSync(rooted), 'a temporary root is kept');
  assert.ok(fs.existsSync(scratch), 'and so is a scratch name with its hash part');
  assert.ok(!fs.existsSync(loose), 'what nothing roots is deleted');
  holder.child.kill('SIGKILL');
  await holder.done;
  ok(nix(nenv, 'nix-store', ['--gc']), 'nix-store --gc after the holder died');
  assert.ok(!fs.existsSync(rooted) && !fs.existsSync(scratch), "a dead process's roots keep nothing");
});
