#!/usr/bin/env node
// Runs the one-file bundle (tools/bundle-cli.js: a faster start) unless a compile since made it
// stale; then the compiled modules, which are always current. CommonJS (bin/package.json), so
// that Node does not start its ES module loader for the bundle.
const { statSync } = require('node:fs');
const path = require('node:path');

const mtime = (rel) => statSync(path.join(__dirname, rel), { throwIfNoEntry: false })?.mtimeMs;
const bundled = mtime('../dist/cli.bundle.cjs');
const compiled = mtime('../tsconfig.tsbuildinfo');
if (bundled !== undefined && (compiled === undefined || bundled >= compiled)) require('../dist/cli.bundle.cjs');
else import('../dist/cli.js');
