// Shared by the drover-hook-ssh tests: derivations in a farm's local store, drover-build runs, remote wrappers.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { Store, addDerivation, type Derivation } from '@drover/store';
import { BIN_DIR, Farm, sh, type SshMachine } from './sshd-harness.js';

export interface Drv {
  drv: string;
  out: string;
  name: string;
}

export interface DrvSpec {
  name: string;
  /** Run by /bin/sh -c; `$out` is the output. */
  cmd: string;
  inputs?: Drv[];
  srcs?: string[];
  features?: string[];
  env?: Record<string, string>;
  system?: string;
}

/** Adds a derivation to the farm's local store (in-process: no CLI start-up per test derivation). */
export async function addDrv(farm: Farm, spec: DrvSpec): Promise<Drv> {
  const store = new Store({ storeDir: farm.storeDir, stateDir: farm.stateDir });
  try {
    const system = spec.system ?? farm.system;
    const env: Record<string, string> = { name: spec.name, system, builder: '/bin/sh', out: '', ...spec.env };
    if (spec.features?.length) env.requiredSystemFeatures = spec.features.join(' ');
    const inputDrvs: Record<string, string[]> = {};
    for (const i of spec.inputs ?? []) inputDrvs[i.drv] = ['out'];
    const drv: Derivation = {
      outputs: { out: { path: '' } },
      inputDrvs,
      inputSrcs: [...(spec.srcs ?? [])].sort(),
      system,
      builder: '/bin/sh',
      args: ['-c', spec.cmd],
      env,
    };
    const drvPath = await addDerivation(store, drv, spec.name);
    const out = store.db.queryDerivationOutputs(drvPath).out!;
    return { drv: drvPath, out, name: spec.name };
  } finally {
    store.close();
  }
}

/** Adds a file of `bytes` pseudo-random bytes as a source path; returns its store path. */
export async function addBlob(farm: Farm, name: string, bytes: number, seed = 1): Promise<string> {
  const f = path.join(farm.dir, name);
  const buf = Buffer.alloc(bytes);
  let x = seed * 2654435761;
  for (let i = 0; i < bytes; i += 4) {
    x = (x * 1103515245 + 12345) >>> 0;
    buf.writeUInt32LE(x, Math.min(i, bytes - 4));
  }
  fs.writeFileSync(f, buf);
  const store = new Store({ storeDir: farm.storeDir, stateDir: farm.stateDir });
  try {
    return await store.addToStore(f, { recursive: true });
  } finally {
    store.close();
    fs.rmSync(f);
  }
}

export interface BuildResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** `@ build-remote DRV HOST` lines: drv → host. */
  remote: Map<string, string>;
}

export interface BuildOptions {
  machines: string;
  jobs?: number;
  extraArgs?: string[];
  env?: Record<string, string>;
}

/** The environment drover-build and the hook get in these tests. */
export function buildEnv(farm: Farm, o: BuildOptions): NodeJS.ProcessEnv {
  return farm.env({
    DROVER_MACHINES: o.machines,
    DROVER_NO_SYNC: '1',
    DROVER_HOOK_SSH_DEBUG: '1',
    DROVER_HOOK_SSH_CONNECT_TIMEOUT: '5',
    ...o.env,
  });
}

export function buildArgs(o: BuildOptions, drvs: string[]): string[] {
  return ['--max-jobs', String(o.jobs ?? 0), '--sandbox', 'none', '--build-hook', path.join(BIN_DIR, 'drover-hook-ssh'), '--print-build-trace', ...(o.extraArgs ?? []), ...drvs];
}

/** Starts drover-build (so a test can act while it runs). */
export function startBuild(farm: Farm, o: BuildOptions, drvs: string[]): { child: ChildProcess; result: Promise<BuildResult> } {
  const child = spawn(path.join(BIN_DIR, 'drover-build'), buildArgs(o, drvs), { env: buildEnv(farm, o), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const result = new Promise<BuildResult>((resolve) => {
    child.once('close', (code) => resolve({ code, stdout, stderr, remote: remoteLines(stderr) }));
  });
  return { child, result };
}

export async function build(farm: Farm, o: BuildOptions, drvs: string[]): Promise<BuildResult> {
  return startBuild(farm, o, drvs).result;
}

function remoteLines(stderr: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of stderr.split('\n')) {
    const r = /^@ build-remote (\S+) (\S+)$/.exec(l);
    if (r) m.set(r[1]!, r[2]!);
  }
  return m;
}

/** Paths among `paths` that the local store holds as valid. */
export function validLocally(farm: Farm, paths: string[]): string[] {
  const store = new Store({ storeDir: farm.storeDir, stateDir: farm.stateDir });
  try {
    return paths.filter((p) => store.db.isValid(p));
  } finally {
    store.close();
  }
}

/** Every valid path of the local store. */
export function allValidLocally(farm: Farm): string[] {
  const store = new Store({ storeDir: farm.storeDir, stateDir: farm.stateDir });
  try {
    return store.db.db.prepare('select path from ValidPaths order by path').pluck().all() as string[];
  } finally {
    store.close();
  }
}

/** Valid paths of a machine's store, asked inside its namespace. */
export function validOnMachine(m: SshMachine, paths: string[]): string[] {
  if (paths.length === 0) return [];
  const r = m.run([path.join(BIN_DIR, 'drover-store'), 'query', '--print-invalid', ...paths]);
  if (r.status !== 0) throw new Error(`query on ${m.name} failed (${r.signal ?? `exit ${r.status}`}): ${r.stderr}`);
  const invalid = new Set(r.stdout.split('\n').filter((l) => l));
  return paths.filter((p) => !invalid.has(p));
}

/**
 * A directory to put first on a machine's PATH (via `?remote-program=`) holding a `tool`
 * (drover-store, drover-hook-ssh) that misbehaves for one subcommand (`$REAL` is the real
 * one) and runs the real one otherwise.
 */
export function wrapperDir(farm: Farm, name: string, tool: string, subcommand: string, script: string): string {
  const dir = path.join(farm.dir, name);
  fs.mkdirSync(dir, { recursive: true });
  const real = path.join(BIN_DIR, tool);
  fs.writeFileSync(
    path.join(dir, tool),
    `#!/bin/sh\nREAL=${sh(real)}\nif [ "$1" = ${sh(subcommand)} ]; then\n${script}\nfi\nexec "$REAL" "$@"\n`,
    { mode: 0o755 },
  );
  return dir;
}

/** Polls `fn` until it returns a truthy value or `ms` pass. */
export async function waitFor<T>(fn: () => T, ms: number, what: string): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Pids of local processes running the program `name` (its argv[0] or, for scripts, argv[1]) with this farm's state dir in their environment. */
export function farmProcesses(farm: Farm, name: string): number[] {
  const out: number[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (![argv[0], argv[1]].some((a) => a !== undefined && (path.basename(a) === name || path.basename(a) === `${name}.js`))) continue;
      // A remote machine's processes see the same paths, but live in its mount namespace.
      if (fs.readlinkSync(`/proc/${pid}/ns/mnt`) !== fs.readlinkSync('/proc/self/ns/mnt')) continue;
      const env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8');
      if (env.split('\0').includes(`DROVER_STATE_DIR=${farm.stateDir}`)) out.push(Number(pid));
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * Runs drover-hook-ssh by itself as the scheduler would for one derivation without inputs:
 * the request, then (after its `# accept`) the inputs line (the .drv) and the outputs line.
 * Gives the hook's own exit status and stderr (its replies, messages and error).
 */
export function hookBuild(farm: Farm, machines: string, d: Drv, env: Record<string, string> = {}): { status: number | null; stderr: string; ms: number } {
  const t0 = Date.now();
  const r = spawnSync(path.join(BIN_DIR, 'drover-hook-ssh'), [farm.system, '0', '0'], {
    input: `0 ${farm.system} ${d.drv} \n${d.drv}\n${d.out}\n`,
    env: buildEnv(farm, { machines, env }),
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, stderr: r.stderr, ms: Date.now() - t0 };
}

/** `drover-hook-ssh ARGS --machines FILE` (status, check) on the farm's state. */
export function hookCommand(farm: Farm, args: string[], machines: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(path.join(BIN_DIR, 'drover-hook-ssh'), args, { env: buildEnv(farm, { machines }), encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The failure memory the hook keeps of machines (STATE/hook-ssh/health/*.json), by file name. */
/** Forgets every machine's remembered failures, so the next test starts without back-off. */
export function forgetFailures(farm: Farm): void {
  fs.rmSync(path.join(farm.stateDir, 'hook-ssh', 'health'), { recursive: true, force: true });
}

/** A frame of the session protocol: type, u32 LE length, payload. */
export function frame(type: string, payload: string): Buffer {
  const body = Buffer.from(payload);
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32LE(body.length, 1);
  return Buffer.concat([head, body]);
}

export function healthRecords(farm: Farm): Record<string, { failures: number; retryAt: number; lastError: string }> {
  const dir = path.join(farm.stateDir, 'hook-ssh', 'health');
  const out: Record<string, { failures: number; retryAt: number; lastError: string }> = {};
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (f.endsWith('.json')) out[f] = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
  }
  return out;
}

/** A regular expression matching `s` literally. */
export function re(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
