// The bubblewrap sandbox: which host files a builder sees, and the bwrap command line.
//
// Inside: an empty root; read-only the sandbox paths (default: /bin/sh, coreutils and the
// shared libraries they load, found once with ldd) and the input closure; writable the
// build dir (at /build, as Nix) and a scratch dir mounted over the store dir, where the
// builder creates its outputs (moved into the real store afterwards, as Nix's chroot
// builds do); /proc, a minimal /dev, /etc/passwd, group and hosts; no network unless the
// derivation is fixed-output.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { UsageError } from '@drover/store';

export type SandboxMode = 'auto' | 'bwrap' | 'none';

/** One host path made visible: `target` inside the sandbox shows `source` of the host. */
export interface SandboxPath {
  target: string;
  source: string;
  /** `PATH?`: skipped when the host lacks it (Nix's syntax). */
  optional: boolean;
}

/** Where the builder's build dir appears inside the sandbox (Nix's sandbox-build-dir). */
export const SANDBOX_BUILD_DIR = '/build';

/** GNU coreutils' programs; those present on the host are in the default sandbox. */
const COREUTILS = (
  '[ arch b2sum base32 base64 basename basenc cat chcon chgrp chmod chown cksum comm cp csplit cut date dd df dir ' +
  'dircolors dirname du echo env expand expr factor false fmt fold groups head hostid id install join link ln logname ' +
  'ls md5sum mkdir mkfifo mknod mktemp mv nice nl nohup nproc numfmt od paste pathchk pinky pr printenv printf ptx pwd ' +
  'readlink realpath rm rmdir runcon seq sha1sum sha224sum sha256sum sha384sum sha512sum shred shuf sleep sort split ' +
  'stat stdbuf stty sum sync tac tail tee test timeout touch tr true truncate tsort tty uname unexpand uniq unlink ' +
  'users vdir wc who whoami yes'
).split(' ');

/** Parses `PATH`, `TARGET=SOURCE` or either with a trailing `?` (optional), as Nix's sandbox-paths. */
export function parseSandboxPath(spec: string): SandboxPath {
  let s = spec;
  const optional = s.endsWith('?');
  if (optional) s = s.slice(0, -1);
  const eq = s.indexOf('=');
  const target = eq < 0 ? s : s.slice(0, eq);
  const source = eq < 0 ? s : s.slice(eq + 1);
  if (!path.isAbsolute(target) || !path.isAbsolute(source)) {
    throw new UsageError(`--sandbox-paths: '${spec}' must be an absolute PATH or TARGET=SOURCE with absolute paths`);
  }
  return { target: path.normalize(target), source: path.normalize(source), optional };
}

let defaultPaths: SandboxPath[] | undefined;

/**
 * What host /bin/sh and coreutils need: the programs, then every shared library ldd names
 * for them (one ldd run per process, only when a sandboxed build starts).
 */
export function defaultSandboxPaths(): SandboxPath[] {
  if (defaultPaths) return defaultPaths;
  const programs: string[] = [];
  if (exists('/bin/sh')) programs.push('/bin/sh');
  for (const name of COREUTILS) {
    const p = ['/usr/bin', '/bin'].map((d) => `${d}/${name}`).find(exists);
    if (p) programs.push(p);
  }
  const libs = new Set<string>();
  const r = spawnSync('ldd', programs, { encoding: 'utf8' });
  for (const line of (r.stdout ?? '').split('\n')) {
    // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m && exists(m[1]!)) libs.add(m[1]!);
  }
  // Without ldd (or static programs), fall back to the library directories themselves.
  if (libs.size === 0) for (const d of ['/lib', '/lib64', '/usr/lib', '/usr/lib64']) if (exists(d)) libs.add(d);
  defaultPaths = [...programs, ...libs].map((p) => ({ target: p, source: p, optional: true }));
  return defaultPaths;
}

function exists(p: string): boolean {
  try {
    fs.statSync(p);
    return true;
  } catch {
    return false;
  }
}

let usable: boolean | undefined;

/** The absolute path of bwrap (builders get PATH=/path-not-set, so it cannot be looked up by them). */
export function bwrapPath(): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (!dir) continue;
    const p = path.join(dir, 'bwrap');
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/**
 * Whether bwrap can make a sandbox here (it needs user namespaces, or root): tried once
 * per process with a trivial run. The reason is returned for the warning.
 */
export function probeBwrap(): { ok: true; bwrap: string } | { ok: false; why: string } {
  const bwrap = bwrapPath();
  if (!bwrap) return { ok: false, why: 'bwrap (bubblewrap) is not on PATH' };
  if (usable === undefined) {
    const r = spawnSync(bwrap, ['--ro-bind', '/', '/', '--unshare-all', '--die-with-parent', '/bin/sh', '-c', ':'], { encoding: 'utf8', timeout: 10_000 });
    usable = r.status === 0;
    if (!usable) return { ok: false, why: `a trial run of bwrap failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}` };
  }
  return usable ? { ok: true, bwrap } : { ok: false, why: 'a trial run of bwrap failed' };
}

/**
 * Mounts making `p.source` visible at `p.target`: symlinks on the way are recreated (so
 * `/bin/sh` works whether /bin is a directory or a link to usr/bin), the file or directory
 * itself is bind-mounted read-only at its resolved place.
 */
function resolveMounts(p: SandboxPath, binds: Map<string, string>, links: Map<string, string>): void {
  if (p.source !== p.target) {
    binds.set(p.target, p.source);
    return;
  }
  let cur = '';
  const parts = p.target.split('/').filter((c) => c !== '');
  for (let i = 0; i < parts.length; i++) {
    const next = `${cur}/${parts[i]}`;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(next);
    } catch {
      if (p.optional) return;
      throw new UsageError(`sandbox path '${p.target}' does not exist on this machine`);
    }
    if (st.isSymbolicLink()) {
      links.set(next, fs.readlinkSync(next));
      try {
        cur = fs.realpathSync(next);
      } catch {
        return; // a dangling link: the link itself is all there is to show
      }
    } else {
      cur = next;
    }
  }
  binds.set(cur, cur);
}

export interface SandboxSpec {
  bwrap: string;
  storeDir: string;
  /** Host dir bind-mounted writable over the store dir; outputs are created in it. */
  storeRoot: string;
  /** Host build dir, mounted writable at /build. */
  buildDir: string;
  /** Host dir holding passwd, group and hosts for /etc. */
  etcDir: string;
  /** The input closure, each mounted read-only at its own path. */
  inputs: Iterable<string>;
  paths: readonly SandboxPath[];
  /** Fixed-output derivations keep the network (their hash is checked instead). */
  network: boolean;
}

/** bwrap's arguments up to (not including) the builder. */
export function bwrapArgs(spec: SandboxSpec): string[] {
  const binds = new Map<string, string>();
  const links = new Map<string, string>();
  for (const p of spec.paths) resolveMounts(p, binds, links);
  for (const f of ['passwd', 'group', 'hosts']) binds.set(`/etc/${f}`, path.join(spec.etcDir, f));
  if (spec.network) {
    for (const f of ['/etc/resolv.conf', '/etc/services']) if (exists(f)) binds.set(f, f);
  }
  const dirs = [...binds.keys()].filter((t) => isDir(binds.get(t)!));
  const covered = (t: string) => dirs.some((d) => t !== d && t.startsWith(`${d}/`));
  const args: string[] = [];
  // Parents before children, or a later mount would hide an earlier one.
  for (const t of [...binds.keys()].sort(byDepth)) {
    if (covered(t) || t === spec.storeDir || t.startsWith(`${spec.storeDir}/`)) continue;
    args.push('--ro-bind', binds.get(t)!, t);
  }
  for (const [t, link] of [...links].sort((a, b) => byDepth(a[0], b[0]))) {
    if (!covered(t) && !binds.has(t)) args.push('--symlink', link, t);
  }
  args.push('--bind', spec.storeRoot, spec.storeDir);
  for (const p of spec.inputs) args.push('--ro-bind', p, p);
  args.push(
    '--bind', spec.buildDir, SANDBOX_BUILD_DIR,
    '--proc', '/proc',
    '--dev', '/dev',
    '--chdir', SANDBOX_BUILD_DIR,
    '--unshare-all',
    ...(spec.network ? ['--share-net'] : []),
    '--hostname', 'localhost',
    '--die-with-parent',
  );
  return args;
}

function byDepth(a: string, b: string): number {
  return a.split('/').length - b.split('/').length || (a < b ? -1 : a > b ? 1 : 0);
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Writes /etc/passwd, group and hosts for sandboxes into `dir` (once per process). */
export function writeSandboxEtc(dir: string): void {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'passwd'),
    `${uid === 0 ? 'root' : 'nixbld'}:x:${uid}:${gid}:Build user:${SANDBOX_BUILD_DIR}:/noshell\nnobody:x:65534:65534:Nobody:/:/noshell\n`,
  );
  fs.writeFileSync(path.join(dir, 'group'), `${uid === 0 ? 'root' : 'nixbld'}:!:${gid}:\nnogroup:x:65534:\n`);
  fs.writeFileSync(path.join(dir, 'hosts'), '127.0.0.1 localhost\n::1 localhost\n');
}
