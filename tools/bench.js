#!/usr/bin/env node
// Runs every package's benchmark (each times drover against Nix in the same run).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const benches = [
  'packages/store/dist/bench-formats.js',
  'packages/store/dist/bench-validity.js',
  'packages/worker/dist/bench.js',
  'packages/hook-ssh/dist/bench.js',
  'packages/trace/dist/bench.js',
];
const only = process.argv.slice(2);
let failed = 0;
for (const b of benches) {
  if (only.length && !only.some((o) => b.includes(o))) continue;
  const file = path.join(root, b);
  if (!fs.existsSync(file)) {
    process.stderr.write(`bench: ${b} does not exist (not built yet?)\n`);
    failed++;
    continue;
  }
  process.stderr.write(`bench: running ${b}\n`);
  const r = spawnSync(process.execPath, [file], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
