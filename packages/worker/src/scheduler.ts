// The scheduler (Nix 0.16's Worker): goals for derivations, local slots, the build hook,
// output locks, registration, failures and the exit status. One event loop, no threads:
// builders and hooks are processes, and everything else here is short and synchronous.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addTempRoots, checkAcyclic, removeTree, lock, type Store, type ValidPathInfo } from '@drover/store';
import { shown } from '@drover/store/errors';
import { buildOrder, loadGoals, type Goal, type GoalGraph } from './goals.js';
import { LinePrefixer, LogDir, tailLines, type LazyLog } from './build-log.js';
import { BuildLocks, buildLockDir, lockFd } from './build-locks.js';
import { BuildDirs } from './build-dirs.js';
import { Spawner } from './spawner.js';
import { LocalBuild, type SandboxSetup } from './local-build.js';
import { HookError, HookInstance } from './hook-client.js';
import { formatHookRequest, type HookReply, type HookRequest } from './hook-protocol.js';
import { finishOutput } from './outputs.js';
import { Registrar } from './registrar.js';
import { defaultSandboxPaths, probeBwrap, writeSandboxEtc, type SandboxMode, type SandboxPath } from './sandbox.js';
import { canBuildSystem, missingFeatures } from './system.js';
import { exitStatusOf, isPermanent, toFailure, BuildStepError, type BuildFailure } from './failure.js';
import { buildFailedLine, buildStartedLine, buildSucceededLine, hookFailedLine } from './trace-lines.js';
import { dbClosure, validSubset } from './validity.js';
import { failedSubset, recordFailedPaths } from './failed-paths.js';

export interface BuildOptions {
  /** Local build slots; 0 = only via the hook (and preferLocalBuild when nothing else runs). */
  maxJobs: number;
  keepGoing: boolean;
  dryRun: boolean;
  /** Seconds without log output before a build is killed; 0 = never. */
  maxSilentTime: number;
  /** Seconds a build may take; 0 = no limit. */
  timeout: number;
  /** Hook program and leading arguments; undefined = build locally. */
  buildHook: readonly string[] | undefined;
  hookReplyTimeout: number;
  /**
   * Hook requests in flight at once, each to its own hook process. A fresh hook's start-up
   * (a process, often a runtime) sits between one accepted build and the next request: with
   * more than one in flight, those start-ups overlap each other and the running builds.
   */
  hookRequests: number;
  printBuildTrace: boolean;
  printBuildLogs: boolean;
  sandbox: SandboxMode;
  /** Replaces the default sandbox paths when given. */
  sandboxPaths: readonly SandboxPath[] | undefined;
  extraSandboxPaths: readonly SandboxPath[];
  cacheFailures: boolean;
  cores: number;
  keepFailed: boolean;
  thisSystem: string;
  systemFeatures: readonly string[];
  /** How long a postponed derivation waits when no job finishes first. */
  postponeDelayMs: number;
  /** How long finished outputs wait to be registered together. */
  registerDelayMs: number;
  /** The user's stderr. */
  stderr: (s: string) => void;
}

export interface BuildResult {
  /** Output paths of the requested derivations that were built or valid, in request order. */
  outputs: string[];
  failures: { drvPath: string; failure: BuildFailure }[];
  /** Requested derivations that could not be built because an input failed. */
  blocked: string[];
  exitCode: number;
  /** For --dry-run: what would be built, and the requested outputs already valid. */
  wouldBuild?: string[];
  alreadyValid?: string[];
}

type Job = { goal: Goal; kill: () => void };

export class Scheduler {
  private graph!: GoalGraph;
  private readonly ready: Goal[] = [];
  private readonly postponed: Goal[] = [];
  private readonly slotWait: Goal[] = [];
  private readonly jobs = new Set<Job>();
  private localRunning = 0;
  private lockWaits = 0;
  /** Hooks that answered decline or postpone: alive, free for the next request. */
  private readonly idleHooks: HookInstance[] = [];
  /** Every hook this run started: none may outlive it (reap). */
  private readonly hooks = new Set<HookInstance>();
  /** Hooks with a request waiting for its reply: a stopping run gives up on them (stop). */
  private readonly askingHooks = new Set<HookInstance>();
  /**
   * Requests in flight that told the hook a local slot is free (AM_WILLING 1): each promise
   * holds a slot, or several parallel requests would all promise the same one, and the goals
   * the hook declines would queue for slots that were never free.
   */
  private willingInFlight = 0;
  private postponeTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private fatal: unknown;
  private readonly failures: { drvPath: string; failure: BuildFailure }[] = [];
  private readonly logs: LogDir;
  private readonly locks: BuildLocks;
  private readonly buildDirs = new BuildDirs();
  private readonly registrar: Registrar;
  /** References of paths this run knows (built here or read from the DB once). */
  private readonly refs = new Map<string, readonly string[]>();
  private sandbox: SandboxSetup | undefined | null = null;
  private sandboxEtc: string | undefined;
  private finish: (() => void) | undefined;
  private pumping = false;
  private spawner: Spawner | undefined | null = null;
  private slotDir: string | undefined;
  private readonly freeSlots: number[] = [];
  private slotCount = 0;

  constructor(
    private readonly store: Store,
    private readonly opts: BuildOptions,
  ) {
    this.logs = new LogDir(store.stateDir);
    this.locks = new BuildLocks(buildLockDir(store.stateDir));
    this.registrar = new Registrar(store, {
      delayMs: opts.registerDelayMs,
      onError: (e) => this.die(e),
    });
  }

  /**
   * Realises `drvPaths`; resolves with the outputs, failures and exit status. `places` says
   * where each path was read (`standard input: line 3`), for the errors about it.
   */
  async run(drvPaths: readonly string[], places?: readonly string[]): Promise<BuildResult> {
    this.graph = loadGoals(this.store, drvPaths, places);
    const todo = buildOrder(this.graph);
    if (this.opts.dryRun) return this.dryRun(todo);
    // Temporary GC roots, as Nix's builds take them: a `nix-store --gc` running beside this
    // process keeps every derivation, output (built or being built, and its sandbox scratch
    // dir, named with its hash part) and input, and their closures, until it exits.
    addTempRoots(this.store.stateDir, this.tempRoots());
    if (this.opts.cacheFailures) this.failCached(todo);
    for (const g of todo) if (g.state === 'waiting' && g.waitingFor === 0) this.enqueue(g);
    const done = new Promise<void>((resolve) => (this.finish = resolve));
    this.pump();
    await done;
    try {
      await this.registrar.flush();
    } catch (e) {
      this.fatal ??= e;
    }
    await Promise.all(this.idleHooks.splice(0).map((h) => h.close()));
    for (const h of this.hooks) h.reap();
    this.cleanupSandbox();
    this.buildDirs.close();
    this.spawner?.close();
    if (this.slotDir) fs.rmSync(this.slotDir, { recursive: true, force: true });
    this.locks.tidy();
    if (this.fatal) throw this.fatal;
    return this.result();
  }

  /** Stops everything (Ctrl-C, SIGTERM): builders and hooks are killed, nothing more starts. */
  interrupt(): void {
    this.stop();
  }

  private dryRun(todo: Goal[]): BuildResult {
    const alreadyValid: string[] = [];
    for (const g of this.graph.top) if (g.state === 'valid') alreadyValid.push(...Object.values(g.outputs));
    return { outputs: [], failures: [], blocked: [], exitCode: 0, wouldBuild: todo.map((g) => g.drvPath), alreadyValid };
  }

  private failCached(todo: Goal[]): void {
    const outs = todo.flatMap((g) => Object.values(g.outputs));
    const failed = failedSubset(this.store, outs);
    if (failed.size === 0) return;
    for (const g of todo) {
      const f = Object.values(g.outputs).find((o) => failed.has(o));
      if (f) this.fail(g, { kind: 'cached', status: 0, message: `build of '${g.drvPath}' failed before (cached failure of '${f}'; drover-store failed --clear forgets it)` });
    }
  }

  private result(): BuildResult {
    const outputs: string[] = [];
    const blocked: string[] = [];
    for (const g of this.graph.top) {
      if (g.state === 'valid' || g.state === 'built') outputs.push(...Object.values(g.outputs));
      else if (g.failedInput) blocked.push(g.drvPath);
    }
    const failures = this.failures;
    let exitCode = exitStatusOf(failures.map((f) => f.failure));
    // Interrupted or stopped with work left undone and no failure to show for it.
    if (exitCode === 0 && this.graph.top.some((g) => g.state !== 'valid' && g.state !== 'built')) exitCode = 1;
    return { outputs, failures, blocked, exitCode };
  }

  // ---- the queue ---------------------------------------------------------------------

  private enqueue(g: Goal, front = false): void {
    g.state = 'ready';
    if (front) this.ready.unshift(g);
    else this.ready.push(g);
  }

  private useHook(g: Goal): boolean {
    return this.opts.buildHook !== undefined && !(g.preferLocal && this.canBuildLocally(g));
  }

  private canBuildLocally(g: Goal): boolean {
    return canBuildSystem(g.drv.system, this.opts.thisSystem) && missingFeatures(g.features, this.opts.systemFeatures).length === 0;
  }

  private slotFree(g: Goal): boolean {
    return this.localRunning < this.opts.maxJobs || (g.preferLocal && this.localRunning === 0);
  }

  /** Starts whatever can start now. Re-entrant calls are folded into the running one. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      // A goal waits for a slot only while none is free: one that was handed a slot and went
      // to the hook instead must not leave the others waiting for a build that never ends.
      if (this.slotWait.length > 0 && this.localRunning + this.willingInFlight < this.opts.maxJobs) {
        const waiting = this.slotWait.splice(0);
        for (let i = waiting.length - 1; i >= 0; i--) this.enqueue(waiting[i]!, true);
      }
      let head = 0;
      while (!this.stopping && head < this.ready.length) {
        const g = this.ready[head]!;
        if (this.useHook(g)) {
          if (this.askingHooks.size >= Math.max(1, this.opts.hookRequests)) break;
        } else if (!this.canBuildLocally(g)) {
          head++;
          this.fail(g, this.unsupported(g, false));
          continue;
        } else if (this.opts.maxJobs === 0 && this.opts.buildHook === undefined && !g.preferLocal) {
          head++;
          this.fail(g, {
            kind: 'system',
            status: 0,
            message: `cannot build '${g.drvPath}': --max-jobs is 0 and there is no build hook; raise --max-jobs or give --build-hook`,
          });
          continue;
        } else if (!this.slotFree(g)) {
          break;
        }
        head++;
        if (!this.lockOutputs(g)) continue;
        if (this.useHook(g)) void this.askHook(g);
        else this.startLocal(g);
      }
      this.ready.splice(0, head);
    } finally {
      this.pumping = false;
    }
    this.checkDone();
  }

  private checkDone(): void {
    if (!this.finish) return;
    // Waits for other processes' locks cannot be cancelled; a stopping run leaves them.
    if (this.jobs.size > 0 || this.askingHooks.size > 0 || (this.lockWaits > 0 && !this.stopping)) return;
    if (!this.stopping && (this.ready.length > 0 || this.postponed.length > 0 || this.slotWait.length > 0)) return;
    if (!this.stopping) {
      // Nothing runs and nothing waits: any goal still open waits for an input that never
      // comes, which only a dependency cycle among hand-made .drv files can cause.
      const stuck = [...this.graph.goals.values()].filter((g) => g.state === 'waiting');
      for (const g of stuck) this.fail(g, { kind: 'system', status: 0, message: `derivation '${g.drvPath}' waits for inputs that cannot be built (a dependency cycle?)` });
    }
    clearTimeout(this.postponeTimer);
    // A failure above may have stopped the run, and that stop finished it already.
    const f = this.finish;
    this.finish = undefined;
    f?.();
  }

  // ---- output locks --------------------------------------------------------------------

  /**
   * Takes the output locks of `g`. When another process holds one, waits for it in the
   * background and returns false; the goal comes back to the queue when it is free. With
   * the locks held, outputs that became valid meanwhile end the goal, and stale invalid
   * outputs on disk are removed.
   */
  private lockOutputs(g: Goal): boolean {
    // Nix's OUTPATH.lock is held through a local build (see build-locks.ts); a goal offered
    // to the hook takes it only when the hook declines (lockNixOutputs).
    const r = this.locks.tryLockAll(Object.values(g.outputs), !this.useHook(g));
    if ('busy' in r) {
      this.waitForLock(g, r.busy);
      return false;
    }
    g.locks = r.locks;
    return this.settleLockedOutputs(g);
  }

  /**
   * A goal the hook declined is about to build here: it takes Nix's OUTPATH.lock of each
   * output (or waits for it) and looks at its outputs again, as Nix may have built them
   * while the hook was asked.
   */
  private lockNixOutputs(g: Goal): boolean {
    const r = this.locks.tryLockNix(Object.values(g.outputs), true);
    if ('busy' in r) {
      this.releaseLocks(g);
      this.waitForLock(g, r.busy);
      return false;
    }
    g.locks.push(...r.locks);
    return this.settleLockedOutputs(g);
  }

  /**
   * With the output locks of `g` held: outputs that became valid meanwhile end the goal (false),
   * stale invalid outputs on disk are removed (true: build it).
   */
  private settleLockedOutputs(g: Goal): boolean {
    const outs = Object.values(g.outputs);
    // A valid path exists on disk (invariant 1): outputs that do not exist need no DB query.
    const onDisk = outs.filter((p) => fs.existsSync(p) || isSymlink(p));
    if (onDisk.length === 0) return true;
    const valid = validSubset(this.store, outs);
    if (valid.size === outs.length) {
      this.releaseLocks(g);
      this.built(g, false);
      return false;
    }
    if (valid.size > 0) {
      this.releaseLocks(g);
      this.fail(g, { kind: 'system', status: 0, message: `derivation '${g.drvPath}' is blocked: some of its outputs became valid and others did not` });
      return false;
    }
    for (const p of onDisk) {
      try {
        removeTree(p);
      } catch (e) {
        this.releaseLocks(g);
        this.fail(g, { kind: 'system', status: 0, message: `cannot remove the stale output '${p}': ${(e as Error).message}` });
        return false;
      }
    }
    return true;
  }

  private waitForLock(g: Goal, file: string): void {
    g.state = 'locking';
    this.lockWaits++;
    this.opts.stderr(`waiting for the lock on '${file}' (another process is building '${g.drvPath}')\n`);
    void lock(file)
      .then((l) => l.release())
      .catch(() => {})
      .finally(() => {
        this.lockWaits--;
        if (this.stopping) {
          this.checkDone();
          return;
        }
        this.enqueue(g, true);
        this.pump();
      });
  }

  private releaseLocks(g: Goal): void {
    // Unlinking is safe: a waiter that opened the old file notices and retries.
    for (const l of g.locks) l.release({ unlink: true });
    g.locks = [];
  }

  // ---- the hook --------------------------------------------------------------------------

  /** An idle hook that is still alive, else a fresh one (`fresh` forces a new one). */
  private takeHook(fresh = false): { hook: HookInstance; reused: boolean } {
    for (let h = fresh ? undefined : this.idleHooks.pop(); h; h = this.idleHooks.pop()) {
      if (h.child.exitCode === null && h.child.signalCode === null) return { hook: h, reused: true };
    }
    const hook = new HookInstance({
      command: this.opts.buildHook!,
      thisSystem: this.opts.thisSystem,
      maxSilentTime: this.opts.maxSilentTime,
      printBuildTrace: this.opts.printBuildTrace,
      replyTimeout: this.opts.hookReplyTimeout,
      env: { ...process.env, DROVER_STORE_DIR: this.store.storeDir, DROVER_STATE_DIR: this.store.stateDir },
      stderr: this.opts.stderr,
    });
    this.hooks.add(hook);
    void hook.exited.then(() => this.hooks.delete(hook));
    return { hook, reused: false };
  }

  private *tempRoots(): Generator<string> {
    for (const g of this.graph.goals.values()) {
      yield g.drvPath;
      yield* Object.values(g.outputs);
      yield* g.inputPaths;
    }
  }

  private async askHook(g: Goal): Promise<void> {
    const req = { system: g.drv.system, drvPath: g.drvPath, features: g.features };
    g.state = 'asking';
    try {
      formatHookRequest({ amWilling: false, ...req });
    } catch (e) {
      // The derivation's system or features cannot be written on a request line (its own
      // fault, not the hook's): the hook cannot be asked, which is as if it had declined.
      this.notTakenByHook(g, `cannot offer '${g.drvPath}' to the build hook: ${(e as Error).message}`);
      this.pump();
      return;
    }
    const amWilling = this.localRunning + this.willingInFlight < this.opts.maxJobs && this.canBuildLocally(g);
    if (amWilling) this.willingInFlight++;
    let answer;
    try {
      answer = await this.requestHook({ amWilling, ...req });
    } catch (e) {
      if (amWilling) this.willingInFlight--;
      this.releaseLocks(g);
      // Stopping, the request was given up on (see stop): not a failure of the hook.
      if (this.stopping) {
        this.checkDone();
        return;
      }
      const he = e instanceof HookError ? e : new HookError((e as Error).message, 0);
      this.fail(g, { kind: 'hook', status: he.status, message: `build hook failed for '${g.drvPath}': ${he.message}` });
      this.pump();
      return;
    }
    const { hook, reply } = answer;
    if (amWilling) this.willingInFlight--;
    if (reply !== 'accept') this.idleHooks.push(hook);
    if (this.stopping) {
      if (reply === 'accept') hook.kill();
      this.releaseLocks(g);
      this.checkDone();
      return;
    }
    if (reply === 'accept') {
      // This hook process now belongs to this build; the next request gets an idle or a fresh one.
      void this.runRemote(g, hook);
    } else if (reply === 'postpone') {
      this.releaseLocks(g);
      g.state = 'postponed';
      this.postponed.push(g);
      this.postponeTimer ??= setTimeout(() => this.wakePostponed(), this.opts.postponeDelayMs);
    } else {
      this.notTakenByHook(g);
    }
    this.pump();
  }

  /**
   * A build the hook declined, or could not be offered (`unofferable` says why): built here
   * when this machine can, now or once a slot is free; failed otherwise.
   */
  private notTakenByHook(g: Goal, unofferable?: string): void {
    if (!this.canBuildLocally(g)) {
      this.releaseLocks(g);
      this.fail(g, unofferable ? { kind: 'unsupported', status: 0, message: unofferable } : this.unsupported(g, true));
    } else if (this.slotFree(g)) {
      if (this.lockNixOutputs(g)) this.startLocal(g);
    } else if (this.opts.maxJobs === 0) {
      this.releaseLocks(g);
      const why = unofferable ?? `cannot build '${g.drvPath}': the build hook declined it`;
      this.fail(g, { kind: 'system', status: 0, message: `${why} and --max-jobs is 0` });
    } else {
      this.releaseLocks(g);
      g.state = 'slot-wait';
      this.slotWait.push(g);
    }
  }

  /**
   * One request, to an idle hook or a fresh one; the hook that answered is returned. An idle
   * hook may have exited after its last answer, unnoticed until now (a hook should stay, but
   * a short shell hook may not): then the request goes to a fresh hook instead.
   */
  private async requestHook(req: HookRequest): Promise<{ hook: HookInstance; reply: HookReply }> {
    let { hook, reused } = this.takeHook();
    for (;;) {
      this.askingHooks.add(hook);
      try {
        const reply = await hook.request(req);
        this.askingHooks.delete(hook);
        return { hook, reply };
      } catch (e) {
        this.askingHooks.delete(hook);
        hook.kill();
        if (!reused || !(e instanceof HookError) || !e.gone || this.stopping) throw e;
      }
      ({ hook, reused } = this.takeHook(true));
    }
  }

  private wakePostponed(): void {
    clearTimeout(this.postponeTimer);
    this.postponeTimer = undefined;
    for (const g of this.postponed.splice(0)) this.enqueue(g);
    this.pump();
  }

  /** A job ended: postponed goals try again, and the first goal waiting for a slot gets it. */
  private jobEnded(wasLocal: boolean): void {
    if (this.postponed.length > 0) this.wakePostponed();
    if (wasLocal) {
      const g = this.slotWait.shift();
      if (g) this.enqueue(g, true);
    }
    this.pump();
  }

  private unsupported(g: Goal, hookDeclined: boolean): BuildFailure {
    const missing = missingFeatures(g.features, this.opts.systemFeatures);
    const wantSystem = canBuildSystem(g.drv.system, this.opts.thisSystem) ? '' : `a '${g.drv.system}' machine`;
    const wantFeatures = missing.length ? `the system features {${missing.join(', ')}}` : '';
    const what = [wantSystem, wantFeatures].filter((x) => x).join(' with ');
    const by = this.opts.buildHook === undefined ? 'and there is no build hook' : hookDeclined ? 'and the build hook declined it' : 'and no build hook takes it';
    return {
      kind: 'unsupported',
      status: 0,
      message: `cannot build '${g.drvPath}': it needs ${what}, but this is a '${this.opts.thisSystem}' machine with features {${this.opts.systemFeatures.join(', ')}} ${by}`,
    };
  }

  private async runRemote(g: Goal, hook: HookInstance): Promise<void> {
    g.state = 'building';
    const job: Job = { goal: g, kill: () => hook.kill() };
    this.jobs.add(job);
    let openLog: LazyLog | undefined;
    let timedOut: string | undefined;
    const timers: NodeJS.Timeout[] = [];
    try {
      // The hook copies the inputs from the DB: whatever this run built must be valid first.
      await this.registrar.flush();
      const inputs = this.closureOf([...g.inputPaths, g.drvPath], true);
      hook.sendPaths(inputs, Object.values(g.outputs));
      const log = this.logs.open(g.drvPath);
      openLog = log;
      this.trace(buildStartedLine(g.drvPath, g.mainOut, g.drv.system, log.file));
      const prefixer = this.opts.printBuildLogs ? new LinePrefixer(`${g.name}> `, this.opts.stderr) : undefined;
      let lastOutput = Date.now();
      hook.log.on('data', (c: Buffer) => {
        lastOutput = Date.now();
        log.write(c);
        prefixer?.push(c);
      });
      const killFor = (why: string) => {
        timedOut ??= why;
        hook.kill();
      };
      if (this.opts.timeout > 0) timers.push(setTimeout(() => killFor(`timed out after ${this.opts.timeout} seconds`), this.opts.timeout * 1000));
      if (this.opts.maxSilentTime > 0) {
        const mst = this.opts.maxSilentTime;
        timers.push(
          setInterval(() => {
            if (Date.now() - lastOutput >= mst * 1000) killFor(`timed out after ${mst} seconds of silence`);
          }, Math.min(1000, mst * 250)),
        );
      }
      const info = await hook.finished();
      prefixer?.end();
      for (const t of timers) clearTimeout(t);
      log.close();
      if (this.stopping) {
        this.releaseLocks(g);
        g.state = 'failed';
        return;
      }
      if (timedOut) {
        this.releaseLocks(g);
        this.fail(g, { kind: 'timeout', status: info.status, message: `build of '${g.drvPath}' ${timedOut}` }, log.file);
      } else if (info.status === 100) {
        this.releaseLocks(g);
        this.fail(g, { kind: 'builder', status: info.status, message: `remote build of '${g.drvPath}' failed (the hook exited with 100)` }, log.file);
      } else if (info.status !== 0) {
        this.releaseLocks(g);
        this.fail(g, { kind: 'hook', status: info.status, message: `build hook failed for '${g.drvPath}' (${info.description})` }, log.file);
      } else {
        const outs = Object.values(g.outputs);
        if (validSubset(this.store, outs).size === outs.length) {
          // The hook registered them (by import): take them as they are.
          this.releaseLocks(g);
          this.built(g, true);
        } else {
          this.finishOutputs(g);
        }
      }
    } catch (e) {
      for (const t of timers) clearTimeout(t);
      openLog?.close();
      hook.kill();
      this.releaseLocks(g);
      if (!this.stopping) this.fail(g, { ...toFailure(e), kind: e instanceof BuildStepError ? e.kind : 'hook' });
    } finally {
      this.jobs.delete(job);
      this.jobEnded(false);
    }
  }

  // ---- local builds ---------------------------------------------------------------------

  private sandboxSetup(): SandboxSetup | undefined {
    if (this.sandbox !== null) return this.sandbox;
    if (this.opts.sandbox === 'none') return (this.sandbox = undefined);
    const probe = probeBwrap();
    if (!probe.ok) {
      if (this.opts.sandbox === 'bwrap') throw new BuildStepError('system', `--sandbox bwrap: ${probe.why}`);
      this.opts.stderr(`drover-build: warning: building without a sandbox: ${probe.why}\n`);
      return (this.sandbox = undefined);
    }
    this.sandboxEtc = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-sandbox-etc-'));
    writeSandboxEtc(this.sandboxEtc);
    const paths = [...(this.opts.sandboxPaths ?? defaultSandboxPaths()), ...this.opts.extraSandboxPaths];
    return (this.sandbox = { bwrap: probe.bwrap, paths, etcDir: this.sandboxEtc });
  }

  /** The spawner shell, started with the first local build (DROVER_SPAWNER=0 turns it off). */
  private getSpawner(): Spawner | undefined {
    if (this.spawner === null) this.spawner = process.env.DROVER_SPAWNER === '0' ? undefined : Spawner.create();
    return this.spawner;
  }

  /** A file for one running build's output, reused by the next build in the same slot. */
  private takeSlot(): { index: number; file: string } {
    this.slotDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'drover-logs-'));
    const index = this.freeSlots.pop() ?? this.slotCount++;
    return { index, file: path.join(this.slotDir, `slot-${index}`) };
  }

  private cleanupSandbox(): void {
    if (this.sandboxEtc) fs.rmSync(this.sandboxEtc, { recursive: true, force: true });
  }

  private startLocal(g: Goal): void {
    g.state = 'building';
    this.localRunning++;
    let build: LocalBuild;
    let log: LazyLog;
    let buildDir: string;
    let slot: { index: number; file: string } | undefined;
    try {
      const sandbox = this.sandboxSetup();
      log = this.logs.open(g.drvPath);
      buildDir = this.buildDirs.take();
      const spawner = this.opts.printBuildLogs ? undefined : this.getSpawner();
      slot = spawner ? this.takeSlot() : undefined;
      build = new LocalBuild({
        spawner,
        slotLog: slot?.file,
        drvPath: g.drvPath,
        drv: g.drv,
        name: g.name,
        storeDir: this.store.storeDir,
        outputs: g.outputs,
        fixedOutput: g.fixed,
        cores: this.opts.cores,
        buildDir,
        log,
        printLogs: this.opts.printBuildLogs,
        maxSilentTime: this.opts.maxSilentTime,
        timeout: this.opts.timeout,
        inputClosure: sandbox ? this.closureOf(g.inputPaths, false) : [],
        sandbox,
        // bwrap dies with us (--die-with-parent); an unsandboxed builder outlives a killed
        // drover-build, so it keeps the output locks until it ends.
        inheritFds: sandbox ? [] : g.locks.map(lockFd).filter((fd): fd is number => fd !== undefined),
        stderr: this.opts.stderr,
      });
    } catch (e) {
      this.localRunning--;
      if (slot) this.freeSlots.push(slot.index);
      this.releaseLocks(g);
      this.fail(g, toFailure(e));
      return;
    }
    this.trace(buildStartedLine(g.drvPath, g.mainOut, g.drv.system, log.file));
    const job: Job = { goal: g, kill: () => build.kill() };
    this.jobs.add(job);
    void build.done.then((res) => {
      log.close();
      if (slot) this.freeSlots.push(slot.index);
      this.localRunning--;
      this.jobs.delete(job);
      let ok = false;
      try {
        if (this.stopping) {
          this.releaseLocks(g);
          g.state = 'failed';
        } else if (res.launcherDied) {
          this.releaseLocks(g);
          this.fail(g, { kind: 'system', status: res.status, message: `build of '${g.drvPath}' was lost: ${res.description}` }, log.file);
        } else if (res.timedOut) {
          this.releaseLocks(g);
          this.fail(g, { kind: 'timeout', status: res.status, message: `build of '${g.drvPath}' ${res.timedOut}` }, log.file);
        } else if (res.status !== 0) {
          this.releaseLocks(g);
          this.fail(g, { kind: 'builder', status: res.status, message: `builder for '${g.drvPath}' failed with ${res.description}` }, log.file);
        } else {
          build.moveOutputs();
          ok = this.finishOutputs(g);
        }
      } catch (e) {
        this.releaseLocks(g);
        this.fail(g, toFailure(e));
      } finally {
        try {
          build.cleanup();
        } catch (e) {
          this.opts.stderr(`drover-build: warning: cannot remove '${build.storeRoot}': ${(e as Error).message}\n`);
        }
        if (this.opts.keepFailed && !ok) {
          this.buildDirs.keep(buildDir);
          this.opts.stderr(`note: keeping the build dir '${buildDir}'\n`);
        } else {
          this.buildDirs.give(buildDir);
        }
      }
      this.jobEnded(true);
    });
  }

  // ---- after a build -----------------------------------------------------------------

  /**
   * The closure of `paths` (those built in this run from memory, the rest from the DB).
   * With `fromDb`, everything is read from the DB (it must be flushed first).
   */
  private closureOf(paths: readonly string[], fromDb: boolean): string[] {
    if (fromDb) return [...dbClosure(this.store, paths).keys()].sort();
    const seen = new Set<string>();
    const stack = [...paths];
    const unknown: string[] = [];
    while (stack.length > 0) {
      const p = stack.pop()!;
      if (seen.has(p)) continue;
      const r = this.refs.get(p);
      if (r === undefined) {
        unknown.push(p);
        continue;
      }
      seen.add(p);
      for (const x of r) if (!seen.has(x)) stack.push(x);
    }
    if (unknown.length > 0) {
      for (const [p, r] of dbClosure(this.store, unknown)) {
        this.refs.set(p, r);
        seen.add(p);
      }
      for (const p of unknown) if (!seen.has(p)) throw new BuildStepError('system', `input '${p}' is not valid in the store`);
    }
    return [...seen];
  }

  /** Canonicalises, hashes, scans and queues the outputs of `g` for registration. */
  private finishOutputs(g: Goal): boolean {
    let infos: ValidPathInfo[];
    try {
      const candidates = [...this.closureOf(g.inputPaths, false), ...Object.values(g.outputs)];
      infos = Object.entries(g.drv.outputs).map(([name, o]) => finishOutput(g.drvPath, name, o, candidates));
      // Outputs that refer to each other cannot be registered in any order (Nix refuses them too).
      const byPath = new Map(infos.map((i) => [i.path, i.references]));
      try {
        checkAcyclic(byPath.keys(), (p) => byPath.get(p));
      } catch (e) {
        throw new BuildStepError('output', `derivation '${g.drvPath}': ${(e as Error).message}`);
      }
    } catch (e) {
      this.releaseLocks(g);
      this.fail(g, toFailure(e));
      return false;
    }
    for (const i of infos) this.refs.set(i.path, i.references);
    this.registrar.add(infos, g.locks);
    g.locks = [];
    this.built(g, true);
    return true;
  }

  /** Outputs of `g` are complete: dependents may start. */
  private built(g: Goal, traced: boolean): void {
    g.state = 'built';
    if (traced) this.trace(buildSucceededLine(g.drvPath, g.mainOut));
    for (const d of g.dependents) {
      if (d.state === 'waiting' && --d.waitingFor === 0) this.enqueue(d);
    }
  }

  private fail(g: Goal, failure: BuildFailure, logFile?: string): void {
    // Once: a goal that failed with an input (blockDependents) is not failed again (cached, stuck).
    if (g.state === 'failed') return;
    g.state = 'failed';
    g.failure = failure;
    this.failures.push({ drvPath: g.drvPath, failure });
    const line = failure.kind === 'hook' ? hookFailedLine : buildFailedLine;
    this.trace(line(g.drvPath, g.mainOut, failure.status, failure.message));
    // The message may quote a derivation's fields or a hook's words: shown escaped, and any
    // line after the first indented, so none of it can pass for a trace line on this stderr.
    let msg = `drover-build: error: ${shown(failure.message).replace(/\n/g, '\n       ')}`;
    // A log file exists once the builder wrote something (build-log.ts): a silent one has none.
    if (logFile && fs.existsSync(logFile)) {
      const tail = tailLines(logFile, 25);
      if (tail.length > 0) msg += `;\n       last ${tail.length} log lines:\n${tail.map((l) => `       > ${l}`).join('\n')}`;
      msg += `\n       full log: ${logFile}`;
    }
    this.opts.stderr(`${msg}\n`);
    if (this.opts.cacheFailures && isPermanent(failure) && failure.kind !== 'cached' && failure.kind !== 'unsupported' && !g.fixed) {
      try {
        recordFailedPaths(this.store, Object.values(g.outputs));
      } catch (e) {
        this.opts.stderr(`drover-build: warning: cannot record the failure: ${(e as Error).message}\n`);
      }
    }
    this.blockDependents(g);
    if (!this.opts.keepGoing) this.stop();
  }

  /**
   * Everything that needs `g` fails with it, each with a build-failed line of its own (so a
   * reader of the trace knows it will never run); with -k independent branches go on.
   */
  private blockDependents(g: Goal): void {
    const stack = [...g.dependents];
    while (stack.length > 0) {
      const d = stack.pop()!;
      if (d.state !== 'waiting') continue;
      d.state = 'failed';
      d.failedInput = g;
      const message = `cannot build '${d.drvPath}': its input '${g.drvPath}' failed`;
      this.trace(buildFailedLine(d.drvPath, d.mainOut, 0, message));
      if (d.topLevel) this.opts.stderr(`drover-build: error: ${message}\n`);
      stack.push(...d.dependents);
    }
  }

  /** Without -k the first failure ends the run: running builds are killed, nothing starts. */
  private stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    for (const j of this.jobs) j.kill();
    // A hook may take up to --hook-timeout to answer: a stopping run does not wait for it.
    for (const h of this.askingHooks) h.abort();
    for (const g of [...this.ready, ...this.postponed, ...this.slotWait]) this.releaseLocks(g);
    this.ready.length = 0;
    this.postponed.length = 0;
    this.slotWait.length = 0;
    clearTimeout(this.postponeTimer);
    // pump() ends with checkDone(); when called from inside pump, that call does it.
    if (!this.pumping) this.checkDone();
  }

  private die(e: unknown): void {
    this.fatal ??= e;
    this.stop();
  }

  private trace(line: string): void {
    if (this.opts.printBuildTrace) this.opts.stderr(line);
  }
}

/** existsSync follows links; a dangling symlink output is still something on disk. */
function isSymlink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
