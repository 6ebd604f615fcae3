// Starts a drover CLI: its one-file bundle (tools/bundle-cli.js, a faster start) unless a
// compile since made it stale, else its compiled modules, which are always current.
// CommonJS, as the bins are, so that Node does not start its ES module loader for the bundle.
const fs = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

/** `binDir`: the bin's own directory, in the package whose dist/ holds the CLI. */
module.exports = function launch(binDir) {
  const pkg = path.dirname(binDir);
  const bundle = path.join(pkg, 'dist', 'cli.bundle.cjs');
  if (fresh(pkg, bundle)) require(bundle);
  else import(pathToFileURL(path.join(pkg, 'dist', 'cli.js')).href);
};

/**
 * The bundle is newer than the last compile of every package it holds (cli.bundle.json):
 * strictly, so that clocks too coarse to tell them apart choose the compiled modules, and a
 * compile record that is missing (`tsc -b --clean`) counts as newer.
 */
function fresh(pkg, bundle) {
  const mtime = (f) => fs.statSync(f, { throwIfNoEntry: false })?.mtimeMs;
  const made = mtime(bundle);
  if (made === undefined) return false;
  let compiled;
  try {
    compiled = JSON.parse(fs.readFileSync(path.join(pkg, 'dist', 'cli.bundle.json'), 'utf8')).compiled;
  } catch {
    return false;
  }
  return Array.isArray(compiled) && compiled.every((f) => (mtime(path.join(pkg, f)) ?? Infinity) < made);
}
