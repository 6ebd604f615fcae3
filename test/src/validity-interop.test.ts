// Real Nix 2.8 and drover on the same store: each reads, verifies and exports what the other wrote.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { removeTree } from '@drover/store';
import { tempStore } from '@drover/store/testing';
import { drover, exportStream, makeChain, nix, nixEnv, ok, registrationText, writeOnDisk, fakeStorePath } from './validity-helpers.js';

/** Every query drover and Nix both answer, compared path by path. */
function compareQueries(nenv: NodeJS.ProcessEnv, denv: NodeJS.ProcessEnv, paths: string[]): void {
  for (const p of paths) {
    for (const [nixFlag, droverFlag] of [
      ['--references', '--references'],
      ['--referrers', '--referrers'],
      ['--requisites', '--requisites'],
      ['--referrers-closure', '--referrers-closure'],
      ['--hash', '--hash'],
      ['--size', '--size'],
      ['--deriver', '--deriver'],
      ['--graph', '--graph'],
      ...(p.endsWith('.drv') ? [['--outputs', '--outputs']] : []),
    ]) {
      const n = ok(nix(nenv, 'nix-store', ['-q', nixFlag!, p]), `nix-store -q ${nixFlag} ${p}`);
      const d = ok(drover(denv, ['query', droverFlag!, p]), `drover-store query ${droverFlag} ${p}`);
      assert.equal(d.stdout, n.stdout, `query ${droverFlag} ${p}`);
    }
  }
}

const NIX_EXPR = `
let
  dep = derivation { name = "dep"; system = builtins.currentSystem; builder = "/bin/sh"; args = ["-c" "echo dep > $out"]; };
  lib = derivation { name = "lib"; system = builtins.currentSystem; builder = "/bin/sh"; args = ["-c" "/bin/mkdir -p $out/lib; echo \${dep} > $out/lib/x; /bin/ln -s \${dep} $out/dep"]; };
in derivation {
  name = "top"; system = builtins.currentSystem; builder = "/bin/sh"; outputs = ["out" "dev"];
  args = ["-c" "/bin/mkdir $out; echo \${lib} > $out/uses-lib; echo \${dep} > $dev; printf '#!/bin/sh\\\\n' > $out/run; /bin/chmod +x $out/run"];
}
`;

test('Nix reads a store drover wrote: verify is clean and queries agree', (t) => {
  const s = tempStore('drover-interop-');
  t.after(s.cleanup);
  const nenv = nixEnv(s.dir, s.storeDir, s.stateDir);
  // Three ways into the store: register-validity (drover hashes), --hash-given, import.
  const a = makeChain(s.storeDir, 'reg', 6, 300);
  a[2]!.deriver = fakeStorePath(s.storeDir, 'drv', 'reg-2.drv');
  writeOnDisk(a);
  ok(drover(s.env, ['register-validity'], registrationText(a)), 'register-validity');
  const b = makeChain(s.storeDir, 'given', 4, 100);
  b[0]!.references = [a[5]!.path];
  writeOnDisk(b);
  ok(drover(s.env, ['register-validity', '--hash-given'], registrationText(b, true)), 'register-validity --hash-given');
  const c = makeChain(s.storeDir, 'imp', 5, 5000);
  c[0]!.references = [b[3]!.path, c[0]!.path];
  ok(drover(s.env, ['import'], exportStream(c)), 'import');
  const src = path.join(s.dir, 'src');
  fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(src, 'sub', 'f'), 'hello\n');
  const added = ok(drover(s.env, ['add', src]), 'add').stdout.trim();

  const v = ok(nix(nenv, 'nix-store', ['--verify', '--check-contents']), 'nix-store --verify --check-contents');
  assert.doesNotMatch(v.stderr, /error|modified|disappeared|warning/i, v.stderr);
  const all = [...a, ...b, ...c].map((p) => p.path).concat([added]);
  compareQueries(nenv, s.env, [a[2]!.path, b[0]!.path, c[0]!.path, added]);
  // Path info as JSON, as `nix path-info --json` gives it (which ends without a newline).
  const infoOf = [c[0]!.path, a[2]!.path, added, c[0]!.path];
  assert.equal(ok(drover(s.env, ['query', '--json', ...infoOf]), 'query --json').stdout, `${ok(nix(nenv, 'nix', ['path-info', '--json', ...infoOf]), 'nix path-info --json').stdout}\n`);
  assert.equal(ok(nix(nenv, 'nix-store', ['--dump-db']), 'dump-db').stdout, ok(drover(s.env, ['dump-db']), 'dump-db').stdout);
  assert.equal(ok(nix(nenv, 'nix-store', ['-q', '--requisites', c[4]!.path]), '-qR').stdout.trim().split('\n').length, 5 + 4 + 6);
  assert.equal(all.length, 16);
});

test('drover reads a store Nix built, and export/import are byte-identical both ways', (t) => {
  const s = tempStore('drover-interop-nix-');
  t.after(s.cleanup);
  const nenv = nixEnv(s.dir, s.storeDir, s.stateDir);
  const expr = path.join(s.dir, 'top.nix');
  fs.writeFileSync(expr, NIX_EXPR);
  const drv = ok(nix(nenv, 'nix-instantiate', [expr]), 'nix-instantiate').stdout.trim();
  ok(nix(nenv, 'nix-build', ['--no-out-link', drv]), 'nix-build');
  const outs = ok(nix(nenv, 'nix-store', ['-q', '--outputs', drv]), 'outputs').stdout.trim().split('\n');
  assert.equal(outs.length, 2);
  const added = ok(nix(nenv, 'nix-store', ['--add', expr]), 'nix-store --add').stdout.trim();

  // drover reads Nix's DB.
  const v = drover(s.env, ['verify', '--check-contents']);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.equal(v.stdout, '');
  const valid = ok(nix(nenv, 'nix-store', ['--dump-db']), 'dump-db').stdout;
  assert.equal(ok(drover(s.env, ['dump-db']), 'dump-db').stdout, valid);
  const paths = valid.split('\n').filter((l) => l.startsWith(s.storeDir + '/') && !/\n/.test(l));
  const everyPath = [...new Set(ok(nix(nenv, 'nix-store', ['-qR', drv, ...outs, added]), '-qR').stdout.trim().split('\n'))];
  assert.ok(everyPath.length >= 8, everyPath.join(' '));
  compareQueries(nenv, s.env, everyPath);
  void paths;

  // Exports from the same store are the same bytes.
  const closure = ok(nix(nenv, 'nix-store', ['-qR', ...outs, drv]), '-qR').stdout.trim().split('\n');
  const eNix = ok(nix(nenv, 'nix-store', ['--export', ...closure]), 'nix-store --export').bytes;
  const eDrover = ok(drover(s.env, ['export', ...closure]), 'drover export').stdoutBytes;
  assert.ok(eDrover.equals(eNix), 'drover export of a Nix store differs from nix-store --export');
  assert.ok(ok(drover(s.env, ['export', '-'], closure.reverse().join('\n')), 'export -').stdoutBytes.equals(eNix), 'argument order does not matter');

  // Nix's export into an empty drover store (same store dir), then back out.
  removeTree(s.storeDir);
  removeTree(s.stateDir);
  const imp = ok(drover(s.env, ['import'], eNix), 'drover import');
  assert.equal(imp.stdout.trim().split('\n').length, closure.length);
  assert.ok(ok(drover(s.env, ['export', ...closure]), 'export').stdoutBytes.equals(eNix), 're-export after import differs');
  const nv = ok(nix(nenv, 'nix-store', ['--verify', '--check-contents']), 'nix verify of drover import');
  assert.doesNotMatch(nv.stderr, /error|modified|disappeared|warning/i, nv.stderr);
  assert.ok(ok(nix(nenv, 'nix-store', ['--export', ...closure]), 'nix export').bytes.equals(eNix), 'Nix exports drover-imported paths differently');
  compareQueries(nenv, s.env, [drv, outs[0]!, outs[1]!]);

  // drover's export into an empty Nix store.
  const eFromDrover = ok(drover(s.env, ['export', ...closure]), 'export').stdoutBytes;
  removeTree(s.storeDir);
  removeTree(s.stateDir);
  ok(nix(nenv, 'nix-store', ['--import'], eFromDrover), 'nix-store --import');
  assert.ok(ok(nix(nenv, 'nix-store', ['--export', ...closure]), 'nix export').bytes.equals(eNix));
  assert.equal(drover(s.env, ['verify', '--check-contents']).code, 0);
  assert.ok(ok(drover(s.env, ['export', ...closure]), 'export').stdoutBytes.equals(eNix));
});

test('register-validity registers what Nix registers from the same input: a repeated entry, a reference listed twice, references to paths valid already', (t) => {
  const s = tempStore('drover-interop-reg-');
  t.after(s.cleanup);
  const a = makeChain(s.storeDir, 'valid', 3, 200);
  const b = makeChain(s.storeDir, 'new', 4, 200);
  writeOnDisk([...a, ...b]);
  const drv = fakeStorePath(s.storeDir, 'drv', 'new-1.drv');
  const second = [
    // Refers to a path valid already (twice), to one later in the input and to itself.
    { ...b[0]!, references: [a[2]!.path, b[1]!.path, a[2]!.path, b[0]!.path] },
    // Listed twice: the later entry (a deriver, other references) is the one that counts (the
    // earlier one's reference would close a cycle with b[2], which refers to b[1]).
    { ...b[1]!, references: [b[2]!.path] },
    { ...a[1]!, references: [] },
    b[2]!,
    { ...b[1]!, references: [a[0]!.path, b[3]!.path], deriver: drv },
    // Refers to a path that is in the input and valid already.
    { ...b[3]!, references: [a[1]!.path] },
  ];
  for (const flags of [[], ['--hash-given'], ['--reregister']]) {
    const hashGiven = flags.includes('--hash-given');
    const state = { drover: path.join(s.dir, `drover-state${flags.join('')}`), nix: path.join(s.dir, `nix-state${flags.join('')}`) };
    const denv = { ...s.env, DROVER_STATE_DIR: state.drover };
    const nenv = nixEnv(s.dir, s.storeDir, state.nix);
    for (const batch of [a, second]) {
      ok(drover(denv, ['register-validity', ...flags], registrationText(batch, hashGiven)), `drover-store register-validity ${flags}`);
      ok(nix(nenv, 'nix-store', ['--register-validity', ...flags], registrationText(batch, hashGiven)), `nix-store --register-validity ${flags}`);
    }
    const dump = ok(nix(nenv, 'nix-store', ['--dump-db']), 'nix-store --dump-db').stdout;
    assert.equal(ok(drover(denv, ['dump-db']), 'dump-db').stdout, dump, `dump-db after register-validity ${flags}`);
    // The DB drover wrote reads as Nix's does, query by query.
    compareQueries(nixEnv(s.dir, s.storeDir, state.drover), denv, [b[0]!.path, b[1]!.path, a[2]!.path]);
    assert.match(dump, new RegExp(`${b[1]!.path}\n[0-9a-f]{64}\n\\d+\n${drv}\n2\n`));
  }
});
