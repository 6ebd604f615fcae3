// Shared by the drover-build tests: a temp store, derivations made in-process, the real binary.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Store, addDerivation, type Derivation } from '@drover/store';
import { tempStore } from '@drover/store/testing';

export const BUILD_BIN = fileURLToPath(new URL('../../packages/worker/bin/drover-build.js', import.meta.url));
export const SYSTEM = `${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux`;

// Adding .drv files syncs the file system per path; test stores are throwaway.
process.env.DROVER_NO_SYNC = '1';

export interface DrvSpec {
  name: string;
  /** Shell command run by /bin/sh -c (PATH is /path-not-set: use /bin/…). */
  cmd: string;
  /** Input derivations (their `out`, or the named outputs). */
  inputs?: (Built | { drv: Built; outputs: string[] })[];
  outputs?: string[];
  env?: Record<string, string>;
  system?: string;
  /** Fixed output: `[r:]ALGO` and base16 hash. */
  fixed?: { hashAlgo: string; hash: string };
  inputSrcs?: string[];
}

export interface Built {
  drv: string;
  out: Record<string, string>;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export class BuildEnv {
  readonly t = tempStore('drover-build-test-');
  readonly store: Store;
  readonly env: NodeJS.ProcessEnv;

  constructor(extraEnv: NodeJS.ProcessEnv = {}) {
    this.store = new Store({ storeDir: this.t.storeDir, stateDir: this.t.stateDir });
    // Build dirs and scratch files of runs the tests kill stay inside the test's dir.
    const tmp = path.join(this.t.dir, 'tmp');
    fs.mkdirSync(tmp);
    this.env = { ...process.env, ...this.t.env, TMPDIR: tmp, DROVER_NO_SYNC: '1', DROVER_LOCK_DIR: path.join(this.t.dir, 'locks'), ...extraEnv };
  }

  get dir(): string {
    return this.t.dir;
  }

  async drv(spec: DrvSpec): Promise<Built> {
    const outs = spec.fixed ? ['out'] : (spec.outputs ?? ['out']);
    const inputDrvs: Record<string, string[]> = {};
    for (const i of spec.inputs ?? []) {
      if ('outputs' in i) inputDrvs[i.drv.drv] = [...(inputDrvs[i.drv.drv] ?? []), ...i.outputs];
      else inputDrvs[i.drv] = [...(inputDrvs[i.drv] ?? []), 'out'];
    }
    const system = spec.system ?? SYSTEM;
    const env: Record<string, string> = { name: spec.name, system, builder: '/bin/sh', ...spec.env };
    for (const o of outs) env[o] = '';
    const outputs: Derivation['outputs'] = {};
    for (const o of outs) outputs[o] = spec.fixed ? { path: '', ...spec.fixed } : { path: '' };
    const drv: Derivation = {
      outputs,
      inputDrvs,
      inputSrcs: spec.inputSrcs ?? [],
      system,
      builder: '/bin/sh',
      args: ['-c', spec.cmd],
      env,
    };
    const drvPath = await addDerivation(this.store, drv, spec.name);
    const out: Record<string, string> = {};
    for (const [o, v] of Object.entries(this.store.db.queryDerivationOutputs(drvPath))) out[o] = v;
    return { drv: drvPath, out };
  }

  build(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): RunResult {
    const r = spawnSync(process.execPath, [BUILD_BIN, ...(args.includes('--sandbox') ? [] : ['--sandbox', 'none']), ...args], {
      cwd: opts.cwd,
      input: opts.input ?? '',
      env: { ...this.env, ...opts.env },
      maxBuffer: 1 << 28,
      timeout: opts.timeoutMs ?? 60_000,
    });
    if (r.error) throw r.error;
    return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  }

  /** Starts drover-build without waiting (for concurrency and kill tests). */
  start(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): { child: ChildProcess; result: Promise<RunResult> } {
    const child = spawn(process.execPath, [BUILD_BIN, ...args], { env: { ...this.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c) => (stdout += c));
    child.stderr!.on('data', (c) => (stderr += c));
    const result = new Promise<RunResult>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
    return { child, result };
  }

  isValid(p: string): boolean {
    return this.store.db.isValid(p);
  }

  /** Writes an executable script (a hook, say) into the test dir. */
  script(name: string, text: string): string {
    const p = path.join(this.t.dir, name);
    fs.writeFileSync(p, text, { mode: 0o755 });
    return p;
  }

  cleanup(): void {
    this.store.close();
    this.t.cleanup();
  }
}

/** Trace lines (`@ …`) of a stderr, each split into its verb and fields. */
export function traceLines(stderr: string): string[][] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('@ '))
    .map((l) => l.slice(2).split(' '));
}

export function sh(cmd: string): string {
  const r = spawnSync('/bin/sh', ['-c', cmd], { encoding: 'utf8' });
  return r.stdout;
}
