// Tests for bin/launch.cjs: a bin runs its bundle only while no compile is newer than it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const LAUNCH = fileURLToPath(new URL('../bin/launch.cjs', import.meta.url));

test('the bundle while it is newer than every compile it holds; the compiled modules otherwise', (t) => {
  const pkg = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-launch-'));
  t.after(() => fs.rmSync(pkg, { recursive: true, force: true }));
  fs.mkdirSync(path.join(pkg, 'bin'));
  fs.mkdirSync(path.join(pkg, 'dist'));
  fs.mkdirSync(path.join(pkg, 'other'));
  fs.writeFileSync(path.join(pkg, 'dist/cli.bundle.cjs'), "process.stdout.write('bundle');\n");
  fs.writeFileSync(path.join(pkg, 'dist/cli.js'), "process.stdout.write('modules');\n");
  fs.writeFileSync(path.join(pkg, 'package.json'), '{"type": "module"}\n');
  fs.writeFileSync(path.join(pkg, 'dist/cli.bundle.json'), JSON.stringify({ compiled: ['tsconfig.tsbuildinfo', 'other/tsconfig.tsbuildinfo'] }));
  const at = (f: string, seconds: number) => {
    fs.writeFileSync(path.join(pkg, f), '', { flag: 'a' });
    fs.utimesSync(path.join(pkg, f), seconds, seconds);
  };
  const runs = () => spawnSync(process.execPath, ['-e', `require(${JSON.stringify(LAUNCH)})(${JSON.stringify(path.join(pkg, 'bin'))})`], { encoding: 'utf8' }).stdout;

  at('tsconfig.tsbuildinfo', 1000);
  at('other/tsconfig.tsbuildinfo', 1000);
  at('dist/cli.bundle.cjs', 2000);
  assert.equal(runs(), 'bundle');
  at('other/tsconfig.tsbuildinfo', 3000);
  assert.equal(runs(), 'modules', "a compile of a package the bundle holds makes it stale");
  at('other/tsconfig.tsbuildinfo', 2000);
  assert.equal(runs(), 'modules', 'a compile as old as the bundle: clocks too coarse to tell, so the modules');
  at('other/tsconfig.tsbuildinfo', 1000);
  fs.rmSync(path.join(pkg, 'tsconfig.tsbuildinfo'));
  assert.equal(runs(), 'modules', 'a compile record that is gone (tsc -b --clean)');
  at('tsconfig.tsbuildinfo', 1000);
  assert.equal(runs(), 'bundle');
  fs.writeFileSync(path.join(pkg, 'dist/cli.bundle.json'), 'not json');
  assert.equal(runs(), 'modules', 'an unreadable list of what the bundle holds');
  fs.rmSync(path.join(pkg, 'dist/cli.bundle.json'));
  assert.equal(runs(), 'modules');
});
