#!/usr/bin/env node
// Bundles a package's compiled CLI (dist/cli.js, its own modules and those of the drover
// packages it uses) into one CommonJS file, dist/cli.bundle.cjs, which the package's bin runs
// (packages/store/bin/launch.cjs) while it is newer than every compile it holds; those are
// listed in dist/cli.bundle.json.
//
// Why: Node resolves, reads and links each ES module separately, and building the ES facade
// of a builtin such as node:fs or node:crypto runs its lazy getters (node:fs loads its streams
// for that). drover-store loads about 30 modules for a registration and drover-build about 50;
// one CommonJS file starts each ~25-40 ms sooner (Node alone takes 60-90 ms here). npm packages
// stay outside (native addons; yargs, loaded only for --help and mistakes). A module's
// import.meta.url becomes the URL of its compiled file, found from the bundle's own place, so
// what it loads by URL (worker threads' entry files, SQL, the native addon) is found as before.
//
// Usage: node tools/bundle-cli.js PACKAGE_DIR...
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const dirs = process.argv.slice(2);
if (dirs.length === 0) {
  process.stderr.write('usage: node tools/bundle-cli.js PACKAGE_DIR...\n');
  process.exit(2);
}

/** Keeps npm packages outside the bundle and takes drover's own (workspace links) in. */
const onlyDrover = {
  name: 'only-drover',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith('@drover/') || args.path.startsWith('node:') ? undefined : { path: args.path, external: true }));
  },
};

/** Gives each module's import.meta.url its compiled file's URL, relative to the bundle. */
function fileUrls(outDir) {
  return {
    name: 'file-urls',
    setup(b) {
      b.onLoad({ filter: /\.js$/ }, (args) => {
        const text = fs.readFileSync(args.path, 'utf8');
        if (!text.includes('import.meta.url')) return undefined;
        const rel = path.relative(outDir, args.path).split(path.sep).join('/');
        return { contents: text.replaceAll('import.meta.url', `__fileUrl(${JSON.stringify(rel)})`), loader: 'js' };
      });
    },
  };
}

for (const dir of dirs) {
  const outDir = path.resolve(dir, 'dist');
  const result = await build({
    entryPoints: [path.join(outDir, 'cli.js')],
    outfile: path.join(outDir, 'cli.bundle.cjs'),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    metafile: true,
    plugins: [onlyDrover, fileUrls(outDir)],
    // "use strict" first: esbuild's own comes after the banner, where it would not count.
    banner: { js: "'use strict';\nconst __fileUrl = (rel) => require('node:url').pathToFileURL(require('node:path').join(__dirname, rel)).href;" },
    logLevel: 'warning',
  });
  // Every package whose compiled files went in: a compile of any of them makes the bundle stale.
  const roots = new Set();
  for (const input of Object.keys(result.metafile.inputs)) {
    let d = path.dirname(fs.realpathSync(input));
    while (d !== path.dirname(d) && !fs.existsSync(path.join(d, 'package.json'))) d = path.dirname(d);
    roots.add(d);
  }
  const compiled = [...roots].map((r) => path.relative(path.resolve(dir), path.join(r, 'tsconfig.tsbuildinfo')).split(path.sep).join('/')).sort();
  fs.writeFileSync(path.join(outDir, 'cli.bundle.json'), `${JSON.stringify({ compiled }, null, 2)}\n`);
}
