#!/usr/bin/env node
// Runs the one-file bundle (tools/bundle-cli.js: a faster start) unless a compile since made it
// stale; then the compiled modules, which are always current.
import { statSync } from 'node:fs';

const mtime = (rel) => statSync(new URL(rel, import.meta.url), { throwIfNoEntry: false })?.mtimeMs;
const bundled = mtime('../dist/cli.bundle.js');
const compiled = mtime('../tsconfig.tsbuildinfo');
await import(bundled !== undefined && (compiled === undefined || bundled >= compiled) ? '../dist/cli.bundle.js' : '../dist/cli.js');
