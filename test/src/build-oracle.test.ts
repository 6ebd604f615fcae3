// Real Nix as the oracle: derivations made by nix-instantiate in drover's store build with
// drover-build to the output paths, contents and references that nix-build gives them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { removeTree } from '@drover/store';
import { tempStore } from '@drover/store/testing';
import { BUILD_BIN } from './build-harness.js';
import { nix, nixEnv } from './nix-env.js';

const t = tempStore('drover-build-oracle-');
after(() => t.cleanup());
const env = { ...t.env, ...nixEnv(t.dir, t.storeDir, t.stateDir), DROVER_NO_SYNC: '1' };

// The NAR hash of a directory holding one file `x` with contents `x`: the recursive fixed output.
const fodDir = path.join(t.dir, 'fod-tree');
fs.mkdirSync(fodDir);
fs.writeFileSync(path.join(fodDir, 'x'), 'x');
const fodrHash = nix('nix-hash', ['--type', 'sha256', '--base32', fodDir], env).toString().trim();
const fodHash = createHash('sha256').update('fixed').digest('hex');

const EXPR = path.join(t.dir, 'oracle.nix');
fs.writeFileSync(
  EXPR,
  `let
  mk = name: script: attrs: derivation ({ inherit name; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" script ]; } // attrs);
  a = mk "oracle-a" "echo hello > $out" {};
  b = mk "oracle-b" "/bin/mkdir $out $dev; echo \${a} > $out/a; echo $out > $dev/out-path; /bin/ln -s \${a} $out/link" { outputs = [ "out" "dev" ]; };
  c = mk "oracle-c" "echo \${b.dev} \${b} > $out" {};
  fod = mk "oracle-fod" "printf fixed > $out" { outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "${fodHash}"; };
  fodr = mk "oracle-fodr" "/bin/mkdir $out; printf x > $out/x" { outputHashMode = "recursive"; outputHashAlgo = "sha256"; outputHash = "${fodrHash}"; };
  d = mk "oracle-d" "/bin/cat \${fod} > $out; echo \${fodr} >> $out" {};
in { inherit a b c fod fodr d; }
`,
);

interface OutInfo {
  path: string;
  hash: string;
  refs: string;
  contents: string;
}

/** Every output of `drvs`, with what Nix says about it. */
function describe(drvs: string[]): OutInfo[] {
  const outs = nix('nix-store', ['-q', '--outputs', ...drvs], env).toString().trim().split('\n').sort();
  return outs.map((p) => ({
    path: p,
    hash: nix('nix-store', ['-q', '--hash', p], env).toString().trim(),
    refs: nix('nix-store', ['-q', '--references', p], env).toString().trim(),
    contents: fs.statSync(p).isDirectory() ? fs.readdirSync(p).sort().join(',') : fs.readFileSync(p, 'utf8'),
  }));
}

test('nix-instantiate derivations build with drover-build exactly as nix-build builds them', () => {
  const drvs = nix('nix-instantiate', [EXPR], env).toString().trim().split('\n').sort();
  assert.equal(drvs.length, 6);
  const r = spawnSync(process.execPath, [BUILD_BIN, '--print-build-trace', ...drvs], { env: { ...process.env, ...env } });
  assert.equal(r.status, 0, r.stderr.toString());
  const byDrover = describe(drvs);
  assert.equal(byDrover.length, 7, 'b has two outputs');
  // Nix itself finds the drover-built store consistent.
  const verify = spawnSync('nix-store', ['--verify', '--check-contents'], { env: { ...process.env, ...env } });
  assert.equal(verify.status, 0, verify.stderr.toString());
  assert.doesNotMatch(verify.stderr.toString(), /modified|invalid|error/i);

  // The same expression in a fresh store of the same store dir, built by Nix.
  removeTree(t.storeDir);
  removeTree(t.stateDir);
  const drvs2 = nix('nix-instantiate', [EXPR], env).toString().trim().split('\n').sort();
  assert.deepEqual(drvs2, drvs);
  nix('nix-store', ['-r', ...drvs2], env);
  const byNix = describe(drvs2);
  assert.deepEqual(byDrover, byNix);
  const c = byNix.find((o) => o.path.endsWith('-oracle-c'))!;
  assert.equal(c.refs.split('\n').length, 2, 'c refers to both outputs of b');
});
