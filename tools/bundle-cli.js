#!/usr/bin/env node
// Bundles a package's compiled CLI (dist/cli.js and the package's own modules) into one
// CommonJS file, dist/cli.bundle.cjs, which the package's bin runs when it is newer than the
// last compile.
//
// Why: Node resolves, reads and links each ES module separately, and building the ES facade
// of a builtin such as node:fs or node:crypto runs its lazy getters (node:fs loads its streams
// for that). drover-store loads about 30 modules for a registration; one CommonJS file starts
// ~25 ms sooner (an empty register-validity ~170 -> ~145 ms here, Node alone taking ~90).
// npm packages stay outside (native addons, yargs loaded only for --help), and so do worker
// threads' entry files, loaded by URL next to the bundle (dist/hash-pool.js,
// dist/nar-reader-worker.js). import.meta.url, which CommonJS lacks, becomes the bundle's URL.
//
// Usage: node tools/bundle-cli.js PACKAGE_DIR...
import path from 'node:path';
import { build } from 'esbuild';

const dirs = process.argv.slice(2);
if (dirs.length === 0) {
  process.stderr.write('usage: node tools/bundle-cli.js PACKAGE_DIR...\n');
  process.exit(2);
}
for (const dir of dirs) {
  await build({
    entryPoints: [path.join(dir, 'dist/cli.js')],
    outfile: path.join(dir, 'dist/cli.bundle.cjs'),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    packages: 'external',
    define: { 'import.meta.url': '__bundleUrl' },
    banner: { js: "const __bundleUrl = require('node:url').pathToFileURL(__filename).href;" },
    logLevel: 'warning',
  });
}
