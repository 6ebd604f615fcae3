// One builder process on this machine: its environment, sandbox, log and end.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { removeTree, toBase32, type Derivation } from '@drover/store';
import { bwrapArgs, SANDBOX_BUILD_DIR, type SandboxPath } from './sandbox.js';
import { LinePrefixer, type LazyLog } from './build-log.js';
import { killGroup, statusOf, type ExitInfo } from './processes.js';
import { Spawner } from './spawner.js';

export interface SandboxSetup {
  bwrap: string;
  paths: readonly SandboxPath[];
  etcDir: string;
}

export interface LocalBuildSpec {
  drvPath: string;
  drv: Derivation;
  /** Derivation name, the `-L` prefix. */
  name: string;
  storeDir: string;
  /** Output name → path. */
  outputs: Record<string, string>;
  fixedOutput: boolean;
  cores: number;
  /** An empty, private directory for the build. */
  buildDir: string;
  log: LazyLog;
  printLogs: boolean;
  maxSilentTime: number;
  timeout: number;
  /** The input closure (mounted into the sandbox). */
  inputClosure: readonly string[];
  sandbox: SandboxSetup | undefined;
  /** Fds the builder inherits at 3, 4…: the output locks, so they outlive a killed scheduler. */
  inheritFds: readonly number[];
  /** Where `-L` lines go. */
  stderr: (s: string) => void;
  /** Starts the builder cheaply when given (see spawner.ts), with its output in `slotLog`. */
  spawner?: Spawner;
  slotLog?: string;
}

export interface LocalBuildResult extends ExitInfo {
  /** Set when drover killed the builder for silence or time. */
  timedOut?: string;
}

/**
 * The environment Nix 2.8 gives a builder: fixed variables, then the derivation's own,
 * then the build dir and log variables; fixed-output derivations also get the
 * impureEnvVars they name from the caller's environment.
 */
export function builderEnv(spec: Pick<LocalBuildSpec, 'drv' | 'outputs' | 'storeDir' | 'cores' | 'fixedOutput'>, buildDirInside: string): Record<string, string> {
  const env: Record<string, string> = Object.create(null);
  env['PATH'] = '/path-not-set';
  env['HOME'] = '/homeless-shelter';
  env['NIX_STORE'] = spec.storeDir;
  env['NIX_BUILD_CORES'] = String(spec.cores);
  for (const [k, v] of Object.entries(spec.drv.env)) env[k] = v;
  for (const [k, v] of Object.entries(spec.outputs)) env[k] = v;
  if (spec.fixedOutput) {
    for (const name of (spec.drv.env['impureEnvVars'] ?? '').split(/\s+/)) {
      const v = name ? process.env[name] : undefined;
      if (v !== undefined) env[name] = v;
    }
  }
  for (const k of ['NIX_BUILD_TOP', 'TMPDIR', 'TEMPDIR', 'TMP', 'TEMP', 'PWD']) env[k] = buildDirInside;
  env['NIX_LOG_FD'] = '2';
  env['TERM'] = 'xterm-256color';
  return env;
}

/** Nix's passAsFile: the named attributes go to files in the build dir, `NAMEPath` names them. */
function passAsFiles(env: Record<string, string>, buildDir: string, buildDirInside: string): void {
  const names = (env['passAsFile'] ?? '').split(/\s+/).filter((n) => n !== '');
  for (const name of names) {
    const file = `.attr-${toBase32(createHash('sha256').update(name).digest())}`;
    fs.writeFileSync(path.join(buildDir, file), env[name] ?? '');
    env[`${name}Path`] = `${buildDirInside}/${file}`;
    delete env[name];
  }
}

/** Appends a finished build's slot log to its real log (created only when there is something). */
function copyLog(slot: string, log: LazyLog): void {
  let fd: number;
  try {
    fd = fs.openSync(slot, 'r');
  } catch {
    return;
  }
  try {
    const buf = Buffer.allocUnsafe(1 << 16);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      log.write(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The scratch store dir of a sandboxed build of `drvPath` (in the store dir: outputs leave it
 * by rename), named as Nix names its `DRV.chroot`: with the derivation's hash part, which the
 * build holds as a temporary GC root, so Nix's collector leaves it alone.
 */
export function sandboxScratchDir(storeDir: string, drvPath: string): string {
  return path.join(storeDir, `${path.basename(drvPath)}.drover-sandbox`);
}

/** How long output already in the pipes may take to arrive after the builder's group is gone. */
const DRAIN_MS = 1000;

export class LocalBuild {
  /** Scratch dir mounted over the store dir in the sandbox. */
  readonly storeRoot: string | undefined;
  readonly done: Promise<LocalBuildResult>;
  private timedOut: string | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private exited = false;
  private killer: () => void = () => {};

  constructor(readonly spec: LocalBuildSpec) {
    const sb = spec.sandbox;
    const inside = sb ? SANDBOX_BUILD_DIR : spec.buildDir;
    const env = builderEnv(spec, inside);
    if (env['passAsFile']) passAsFiles(env, spec.buildDir, inside);
    let cmd = spec.drv.builder;
    let args = spec.drv.args;
    if (sb) {
      // Named after the derivation, as Nix names its `.chroot` dirs, not after this process: a
      // drover-build killed with -9 cannot remove its scratch store (partial outputs, maybe
      // large), and the next build of the same derivation, which holds the output locks that
      // keep every other builder of it out, removes what is left there instead.
      this.storeRoot = sandboxScratchDir(spec.storeDir, spec.drvPath);
      removeTree(this.storeRoot);
      fs.mkdirSync(this.storeRoot, { mode: 0o755 });
      args = [
        ...bwrapArgs({
          bwrap: sb.bwrap,
          storeDir: spec.storeDir,
          storeRoot: this.storeRoot,
          buildDir: spec.buildDir,
          etcDir: sb.etcDir,
          inputs: spec.inputClosure,
          paths: sb.paths,
          network: spec.fixedOutput,
        }),
        '--',
        cmd,
        ...args,
      ];
      cmd = sb.bwrap;
    }
    const viaSpawner = spec.spawner?.alive && spec.slotLog !== undefined && !spec.printLogs && Spawner.canPass(env);
    this.done = viaSpawner ? this.startViaSpawner(spec, cmd, args, env) : this.startViaNode(spec, cmd, args, env);
  }

  private armTimers(spec: LocalBuildSpec, silentFor: () => number): void {
    if (spec.timeout > 0) {
      this.timers.push(setTimeout(() => this.killFor(`timed out after ${spec.timeout} seconds`), spec.timeout * 1000));
    }
    if (spec.maxSilentTime > 0) {
      const mst = spec.maxSilentTime;
      this.timers.push(
        setInterval(() => {
          if (silentFor() >= mst * 1000) this.killFor(`timed out after ${mst} seconds of silence`);
        }, Math.min(1000, mst * 250)),
      );
    }
  }

  private clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
  }

  /** The cheap way: a line to the spawner shell; the log is the slot file, copied if not empty. */
  private async startViaSpawner(spec: LocalBuildSpec, cmd: string, args: readonly string[], env: Record<string, string>): Promise<LocalBuildResult> {
    const slot = spec.slotLog!;
    const job = spec.spawner!.start({ cwd: spec.buildDir, env, cmd, args, logFile: slot });
    this.killer = () => job.kill();
    let size = 0;
    let last = Date.now();
    this.armTimers(spec, () => {
      try {
        const s = fs.statSync(slot).size;
        if (s !== size) {
          size = s;
          last = Date.now();
        }
      } catch {
        /* not there yet */
      }
      return Date.now() - last;
    });
    const info = await job.exit;
    this.exited = true;
    // Whatever the builder left running in its session goes with it.
    job.kill();
    this.clearTimers();
    copyLog(slot, spec.log);
    return { ...info, description: this.timedOut ? 'signal SIGKILL' : info.description, timedOut: this.timedOut };
  }

  /** Node's own spawn: pipes for the output (needed for -L), one fork of the whole scheduler. */
  private startViaNode(spec: LocalBuildSpec, cmd: string, args: readonly string[], env: Record<string, string>): Promise<LocalBuildResult> {
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, {
        cwd: spec.buildDir,
        env,
        // Its own process group, so timeouts and the end of the build reach every process.
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe', ...spec.inheritFds],
      });
    } catch (e) {
      // Some failures (E2BIG: an environment too large to exec) throw instead of emitting
      // 'error': the builder could not start, as when it does not exist.
      this.exited = true;
      return Promise.resolve({ status: 127, description: `could not start builder '${spec.drv.builder}': ${(e as Error).message}` });
    }
    this.killer = () => killGroup(child.pid, 'SIGKILL');
    let lastOutput = Date.now();
    const prefixer = spec.printLogs ? new LinePrefixer(`${spec.name}> `, spec.stderr) : undefined;
    const onData = (c: Buffer) => {
      lastOutput = Date.now();
      spec.log.write(c);
      prefixer?.push(c);
    };
    const out = child.stdout!;
    const err = child.stderr!;
    out.on('data', onData);
    err.on('data', onData);
    this.armTimers(spec, () => Date.now() - lastOutput);
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    return new Promise((resolve) => {
      const finish = (info: ExitInfo) => {
        this.clearTimers();
        prefixer?.end();
        resolve({ ...info, timedOut: this.timedOut });
      };
      child.once('error', (e) => {
        this.exited = true;
        finish({ status: 127, description: `could not start builder '${spec.drv.builder}': ${e.message}` });
      });
      child.once('exit', (code, signal) => {
        this.exited = true;
        // Anything the builder left running in its group goes with it, as Nix kills the build user's processes.
        killGroup(child.pid, 'SIGKILL');
        const info = statusOf(code, signal);
        // A process that left the group may hold the pipes open forever: drain, but bounded.
        const t = setTimeout(() => {
          out.destroy();
          err.destroy();
        }, DRAIN_MS);
        void closed.then(() => {
          clearTimeout(t);
          finish(info);
        });
      });
    });
  }

  private killFor(why: string): void {
    if (this.exited || this.timedOut) return;
    this.timedOut = why;
    this.killer();
  }

  /** Stops the builder and everything in its group. */
  kill(): void {
    if (!this.exited) this.killer();
  }

  /**
   * After a sandboxed build: moves the outputs the builder made from the scratch store into
   * the store (the same file system, so each move is one rename).
   */
  moveOutputs(): void {
    if (!this.storeRoot) return;
    for (const p of Object.values(this.spec.outputs)) {
      const src = path.join(this.storeRoot, path.basename(p));
      try {
        fs.lstatSync(src);
      } catch {
        continue;
      }
      removeTree(p);
      fs.renameSync(src, p);
    }
  }

  /** Removes the scratch store of a sandboxed build. */
  cleanup(): void {
    if (this.storeRoot) removeTree(this.storeRoot);
  }
}
