// One builder process on this machine: its build dir, environment, sandbox, log and end.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { removeTree, toBase32, type Derivation } from '@drover/store';
import { bwrapArgs, SANDBOX_BUILD_DIR, type SandboxPath } from './sandbox.js';
import { LinePrefixer } from './build-log.js';
import { killGroup, statusOf, type ExitInfo } from './processes.js';

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
  logFile: string;
  /** Open log fd (O_APPEND); the builder writes to it directly unless `printLogs`. */
  logFd: number;
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
export function builderEnv(spec: LocalBuildSpec, buildDirInside: string): Record<string, string> {
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

export class LocalBuild {
  readonly child: ChildProcess;
  readonly buildDir: string;
  /** Scratch dir mounted over the store dir in the sandbox. */
  readonly storeRoot: string | undefined;
  readonly done: Promise<LocalBuildResult>;
  private timedOut: string | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private exited = false;

  constructor(readonly spec: LocalBuildSpec) {
    this.buildDir = fs.mkdtempSync(path.join(os.tmpdir(), `drover-build-${spec.name.slice(0, 64)}-`));
    const sb = spec.sandbox;
    const inside = sb ? SANDBOX_BUILD_DIR : this.buildDir;
    const env = builderEnv(spec, inside);
    if (env['passAsFile']) passAsFiles(env, this.buildDir, inside);
    let cmd = spec.drv.builder;
    let args = spec.drv.args;
    if (sb) {
      this.storeRoot = path.join(spec.storeDir, `.drover-sandbox-${path.basename(this.buildDir)}`);
      fs.mkdirSync(this.storeRoot, { mode: 0o755 });
      args = [
        ...bwrapArgs({
          bwrap: sb.bwrap,
          storeDir: spec.storeDir,
          storeRoot: this.storeRoot,
          buildDir: this.buildDir,
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
    const out: number | 'pipe' = spec.printLogs ? 'pipe' : spec.logFd;
    this.child = spawn(cmd, args, {
      cwd: this.buildDir,
      env,
      // Its own process group, so timeouts and the end of the build reach every process.
      detached: true,
      stdio: ['ignore', out, out, ...spec.inheritFds],
    });
    const started = Date.now();
    let lastOutput = started;
    if (spec.printLogs) {
      const prefixer = new LinePrefixer(`${spec.name}> `, spec.stderr);
      const onData = (c: Buffer) => {
        lastOutput = Date.now();
        fs.writeSync(spec.logFd, c);
        prefixer.push(c);
      };
      this.child.stdout!.on('data', onData);
      this.child.stderr!.on('data', onData);
      this.child.once('close', () => prefixer.end());
    }
    if (spec.timeout > 0) {
      this.timers.push(setTimeout(() => this.killFor(`timed out after ${spec.timeout} seconds`), spec.timeout * 1000));
    }
    if (spec.maxSilentTime > 0) {
      // Without a pipe, the log file's size tells whether the builder said anything.
      let size = 0;
      const tick = Math.min(1000, spec.maxSilentTime * 250);
      this.timers.push(
        setInterval(() => {
          if (!spec.printLogs) {
            const s = fs.fstatSync(spec.logFd).size;
            if (s !== size) {
              size = s;
              lastOutput = Date.now();
            }
          }
          if (Date.now() - lastOutput >= spec.maxSilentTime * 1000) {
            this.killFor(`timed out after ${spec.maxSilentTime} seconds of silence`);
          }
        }, tick),
      );
    }
    this.done = new Promise((resolve) => {
      const finish = (info: ExitInfo) => {
        for (const t of this.timers) clearTimeout(t);
        resolve({ ...info, timedOut: this.timedOut });
      };
      this.child.once('error', (e) => {
        this.exited = true;
        finish({ status: 127, description: `could not start builder '${spec.drv.builder}': ${e.message}` });
      });
      this.child.once('exit', (code, signal) => {
        this.exited = true;
        // Anything the builder left running in its group goes with it, as Nix kills the build user's processes.
        killGroup(this.child.pid, 'SIGKILL');
        if (!spec.printLogs) finish(statusOf(code, signal));
        else this.child.once('close', () => finish(statusOf(code, signal)));
      });
    });
  }

  private killFor(why: string): void {
    if (this.exited || this.timedOut) return;
    this.timedOut = why;
    killGroup(this.child.pid, 'SIGKILL');
  }

  /** Stops the builder and everything in its group. */
  kill(): void {
    if (!this.exited) killGroup(this.child.pid, 'SIGKILL');
  }

  /**
   * After a sandboxed build: moves the outputs the builder made from the scratch store into
   * the store (the same file system, so each move is one rename).
   */
  moveOutputs(): void {
    if (!this.storeRoot) return;
    for (const p of Object.values(this.spec.outputs)) {
      const src = path.join(this.storeRoot, path.basename(p));
      let st: fs.Stats;
      try {
        st = fs.lstatSync(src);
      } catch {
        continue;
      }
      removeTree(p);
      if (st) fs.renameSync(src, p);
    }
  }

  /** Removes the build dir (unless kept) and the scratch store. */
  cleanup(keepBuildDir: boolean): void {
    if (this.storeRoot) removeTree(this.storeRoot);
    if (!keepBuildDir) removeTree(this.buildDir);
  }
}
