// drover-store against live Nix 2.8 on the tricky tree (with a 100 MB file): dump, hash, add.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { STORE_BIN, listTree, makeTrickyTree, run, tempStore } from '@drover/store/testing';
import { nix, nixEnv } from './nix-env.js';

const s = tempStore('drover-formats-');
const tree = path.join(s.dir, 'tree');
const env = { ...s.env, ...nixEnv(s.dir, s.storeDir, s.stateDir) };
before(() => makeTrickyTree(tree, true));
after(() => s.cleanup());

test('dump equals nix-store --dump, 100 MB file included', () => {
  const mine = run(STORE_BIN, ['dump', tree]);
  assert.equal(mine.code, 0, mine.stderr);
  assert.ok(mine.stdoutBytes.equals(nix('nix-store', ['--dump', tree], env)));
});

test('hash equals nix-hash for every type, NAR and flat, base16 and base32', () => {
  for (const type of ['md5', 'sha1', 'sha256', 'sha512']) {
    for (const flags of [[], ['--base32']]) {
      assert.equal(run(STORE_BIN, ['hash', '--type', type, ...flags, tree]).stdout, nix('nix-hash', ['--type', type, ...flags, tree], env).toString());
      const big = path.join(tree, 'big');
      assert.equal(run(STORE_BIN, ['hash', '--flat', '--type', type, ...flags, big]).stdout, nix('nix-hash', ['--flat', '--type', type, ...flags, big], env).toString());
    }
  }
});

test('add and add-fixed give the paths Nix gives, and Nix verifies what drover wrote', () => {
  const added = run(STORE_BIN, ['add', tree], { env });
  assert.equal(added.code, 0, added.stderr);
  const p = added.stdout.trim();
  const plain = path.join(tree, 'plain');
  const fixed: string[] = [];
  for (const algo of ['md5', 'sha1', 'sha256', 'sha512']) {
    for (const rec of [[], ['--recursive']]) {
      const r = run(STORE_BIN, ['add-fixed', ...rec, algo, rec.length ? tree : plain], { env });
      assert.equal(r.code, 0, r.stderr);
      fixed.push(r.stdout.trim());
    }
  }
  // Nix reads drover's DB and contents: same paths, no complaints, identical NAR hash.
  assert.equal(nix('nix-store', ['--add', tree], env).toString().trim(), p);
  let i = 0;
  for (const algo of ['md5', 'sha1', 'sha256', 'sha512']) {
    for (const rec of [[], ['--recursive']]) {
      assert.equal(nix('nix-store', ['--add-fixed', ...rec, algo, rec.length ? tree : plain], env).toString().trim(), fixed[i++]);
    }
  }
  const verify = nix('nix-store', ['--verify', '--check-contents'], env);
  assert.equal(verify.toString(), '');
  assert.equal(nix('nix-store', ['-q', '--hash', p], env).toString().trim(), `sha256:${run(STORE_BIN, ['hash', '--base32', tree]).stdout.trim()}`);
  // Canonical: read-only, mtime 1.
  const st = fs.lstatSync(path.join(p, 'exec.sh'));
  assert.equal(st.mode & 0o777, 0o555);
  assert.equal(st.mtimeMs, 1000);
  assert.equal(fs.lstatSync(p).mode & 0o222, 0);
});

test('add --dry-run prints the path and writes nothing', () => {
  const t = tempStore('drover-dry-');
  try {
    const r = run(STORE_BIN, ['add', '--dry-run', path.join(tree, 'plain')], { env: t.env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${t.storeDir}/[0-9a-z]{32}-plain\n$`));
    assert.deepEqual(listTree(t.storeDir), []);
    assert.equal(fs.existsSync(t.stateDir), false);
  } finally {
    t.cleanup();
  }
});

test('add rejects bad inputs with exit 2 and leaves the store unchanged', () => {
  const t = tempStore('drover-badadd-');
  try {
    const before = listTree(t.storeDir);
    const cases: [string[], RegExp][] = [
      [['add', path.join(s.dir, 'missing')], /cannot add '.*missing': ENOENT/],
      [['add', path.join(tree, 'name with spaces')], /cannot add '.*\/name with spaces': its name contains the character ' '/],
      [['add-fixed', 'sha3', path.join(tree, 'plain')], /unknown hash algorithm 'sha3'/],
      [['add-fixed', 'sha256', tree], /cannot add '.*tree' flat: it is not a regular file/],
      [['add'], /Not enough non-option arguments/],
      // A value missing after an option, refused by yargs itself.
      [['add', path.join(tree, 'plain'), '--store-dir'], /Not enough arguments following: store-dir/],
      // Empty, it would have been the current directory.
      [['add', path.join(tree, 'plain'), '--store-dir='], /--store-dir needs a directory, got an empty value/],
      // Relative, it would be another store in every directory (Nix refuses it too).
      [['add', path.join(tree, 'plain'), '--store-dir', 'relative/store'], /the store dir must be an absolute path .*, got 'relative\/store' from --store-dir/],
    ];
    for (const [args, msg] of cases) {
      const r = run(STORE_BIN, args, { env: t.env });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^drover-store: error: /);
      assert.match(r.stderr, msg);
    }
    assert.deepEqual(listTree(t.storeDir), before);
    // An empty DROVER_STORE_DIR counts as unset, as XDG's variables do: the default store.
    const home = path.join(t.dir, 'home');
    const dry = run(STORE_BIN, ['add', '--dry-run', path.join(tree, 'plain')], { env: { ...t.env, DROVER_STORE_DIR: '', HOME: home, XDG_DATA_HOME: '' } });
    assert.equal(dry.code, 0, dry.stderr);
    assert.ok(dry.stdout.startsWith(`${home}/.local/share/drover/store/`), dry.stdout);
  } finally {
    t.cleanup();
  }
});
