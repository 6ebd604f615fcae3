// The hook process: answers the scheduler's requests, and after `# accept` builds the derivation remotely.
import { DroverError, Store } from '@drover/store';
import { loadMachines, type Machine } from './machines.js';
import { fits, noFitTable, rankCandidates, type Candidate } from './machine-choice.js';
import { LineReader, parsePathsLine, parseRequestLine, replyLine, type HookRequest } from './hook-requests.js';
import { Slots, type Slot } from './slots.js';
import { MachineHealth } from './machine-health.js';
import { forMachine, hookSettings, type HookSettings } from './settings.js';
import { buildAndFetch, probe, RemoteError, upload, type BuildOutcome, type RemoteContext } from './remote-ops.js';
import { engineFor } from './remote-engine.js';
import { controlPath, SshKeyError, sshKeyProblem } from './ssh.js';
import { buildRemoteLine } from '@drover/worker/trace-lines';
import { openSession, runRemoteBuild } from './session-client.js';
import { printable } from './printable.js';

export interface HookOptions {
  thisSystem: string;
  maxSilentTime: number;
  printBuildTrace: boolean;
  storeDir: string;
  stateDir: string;
  machinesFile?: string;
  env: NodeJS.ProcessEnv;
  input: AsyncIterable<Buffer | string>;
  /** The hook's stderr: messages and `# reply` lines, in order. */
  stderr: (s: string) => void;
  /** Where the remote build log goes: fd 4 of the protocol, or our stderr when run by hand. */
  logFd: number | 'inherit';
}

/** How long a passed probe vouches for a machine whose shared connection stays up. */
const PROBE_FRESH_MS = 60_000;

/** The derivation's name: `HASH-NAME.drv` → `NAME`. */
function drvName(drvPath: string): string {
  return drvPath.slice(drvPath.lastIndexOf('/') + 34, -4);
}

/** What the hook knows about the local machine's own abilities, for "decline instead of wait". */
function canBuildLocally(req: HookRequest, thisSystem: string): boolean {
  const systemOk = req.system === thisSystem || (req.system === 'i686-linux' && thisSystem === 'x86_64-linux');
  return req.amWilling && systemOk && req.requiredFeatures.length === 0;
}

type Decision = { reply: 'decline' | 'postpone' } | { reply: 'accept'; slot: Slot; settings: HookSettings };

export class Hook {
  private readonly machines: Machine[];
  private readonly slots: Slots;
  private readonly health: MachineHealth;
  private readonly settings: HookSettings;
  /** Derivations already told "all busy", so a re-asked postpone does not repeat itself. */
  private readonly toldBusy = new Set<string>();

  constructor(private readonly o: HookOptions) {
    this.settings = hookSettings(o.env);
    this.machines = loadMachines(o.machinesFile, o.env).machines;
    this.slots = new Slots(o.stateDir);
    this.health = new MachineHealth(o.stateDir, { base: this.settings.backoffBase, max: this.settings.backoffMax });
  }

  private message(line: string): void {
    this.o.stderr(`drover-hook-ssh: ${printable(line)}\n`);
  }

  private ctx(settings: HookSettings): RemoteContext {
    return { stateDir: this.o.stateDir, storeDir: this.o.storeDir, settings, message: (l) => this.message(l) };
  }

  /** Reads requests until stdin closes (exit 0) or one is accepted (the exit status of that build). */
  async run(): Promise<number> {
    const reader = new LineReader(this.o.input);
    for (;;) {
      const line = await reader.next();
      if (line === undefined) return 0;
      if (line.trim() === '') continue;
      const req = parseRequestLine(line, this.o.storeDir);
      const d = await this.decide(req);
      if (d.reply !== 'accept') {
        this.o.stderr(replyLine(d.reply));
        continue;
      }
      this.o.stderr(replyLine('accept'));
      try {
        return await this.build(req, d.slot, d.settings, reader);
      } finally {
        d.slot.release();
      }
    }
  }

  /**
   * decline: no machine fits, or every fitting one is unreachable, or the local machine is
   * free and able while every fitting machine is busy. postpone: fitting machines are busy.
   * accept: a slot is held on a machine that answered the probe.
   */
  async decide(req: HookRequest): Promise<Decision> {
    const fitting = this.machines.filter((m) => fits(m, req, this.o.thisSystem));
    const local = canBuildLocally(req, this.o.thisSystem);
    if (fitting.length === 0) {
      // Only worth saying when the scheduler cannot fall back on building it here.
      if (req.system !== this.o.thisSystem || req.requiredFeatures.length > 0) this.message(noFitTable(this.machines, req, this.o.thisSystem));
      return { reply: 'decline' };
    }
    const failedNow: { m: Machine; error: string }[] = [];
    const tried = new Set<string>();
    for (;;) {
      const backingOff: { m: Machine; error: string; retryAt: number; failures: number }[] = [];
      const pick = await this.slots.choosing(() => {
        const cands: Candidate[] = [];
        for (const m of fitting) {
          if (tried.has(m.id)) continue;
          const rec = this.health.backingOff(m);
          if (rec) {
            backingOff.push({ m, error: rec.lastError, retryAt: rec.retryAt, failures: rec.failures });
            continue;
          }
          cands.push({ machine: m, load: this.slots.load(m) });
        }
        for (const c of rankCandidates(cands)) {
          const slot = this.slots.tryAcquire(c.machine);
          if (slot) return { slot, cands };
        }
        return { slot: undefined, cands };
      });
      if (!pick.slot) {
        if (pick.cands.length === 0) {
          this.unreachable(req, failedNow, backingOff);
          return { reply: 'decline' };
        }
        if (local) return { reply: 'decline' };
        if (!this.toldBusy.has(req.drvPath)) {
          this.toldBusy.add(req.drvPath);
          const loads = pick.cands.map((c) => `${c.machine.uri} ${c.load}/${c.machine.maxJobs}`).join(', ');
          this.message(`all machines that can build '${req.drvPath}' are busy (${loads}); waiting for a free slot`);
        }
        return { reply: 'postpone' };
      }
      const m = pick.slot.machine;
      const settings = forMachine(this.settings, m);
      try {
        // Before trusting a recent probe or a running agent: a key the machines file names
        // must be usable, or the line is broken however long an old connection lasts.
        const keyProblem = sshKeyProblem(m);
        if (keyProblem) throw new SshKeyError(keyProblem);
        // A machine probed moments ago over a connection that is still up needs no new probe:
        // that round trip sits on the scheduler's critical path, once per derivation.
        const cp = settings.shareConnection ? controlPath(this.o.stateDir, m, settings) : undefined;
        if (!cp || !this.health.probedRecently(m, cp, PROBE_FRESH_MS)) {
          const t0 = Date.now();
          await probe(this.ctx(settings), m);
          if (this.o.env.DROVER_HOOK_SSH_DEBUG) this.message(`probed ${m.uri}: ${Date.now() - t0} ms`);
          this.health.recordSuccess(m);
          if (cp) this.health.recordProbe(m, cp);
        }
        pick.slot.setHolder({ pid: process.pid, drv: req.drvPath, since: Date.now() });
        return { reply: 'accept', slot: pick.slot, settings };
      } catch (e) {
        pick.slot.release();
        if (!(e instanceof RemoteError) && !(e instanceof SshKeyError)) throw e;
        failedNow.push({ m, error: e.message });
        tried.add(m.id);
        const others = fitting.some((f) => !tried.has(f.id)) ? ', trying another machine' : '';
        if (e instanceof SshKeyError) {
          // A local mistake, checked without connecting: no back-off, so a fixed key counts at once.
          this.message(`${e.message}; skipping ${m.uri}${others}`);
          continue;
        }
        const rec = this.health.recordFailure(m, e.message);
        this.message(`${e.message}; skipping ${m.uri} for ${Math.round((rec.retryAt - Date.now()) / 1000)}s${others}`);
      }
    }
  }

  private unreachable(
    req: HookRequest,
    failedNow: { m: Machine; error: string }[],
    backingOff: { m: Machine; error: string; retryAt: number; failures: number }[],
  ): void {
    const lines = [
      ...failedNow.map((f) => (f.error.includes(f.m.uri) ? f.error : `${f.m.uri}: ${f.error}`)),
      ...backingOff.map(
        (b) =>
          `${b.m.uri}: failed ${b.failures} time${b.failures === 1 ? '' : 's'} in a row, next try in ${Math.max(1, Math.round((b.retryAt - Date.now()) / 1000))}s; last error: ${b.error}`,
      ),
    ];
    this.message(`every machine that can build '${req.drvPath}' is unreachable:\n${lines.join('\n')}`);
  }

  /** After accept: read the inputs and outputs lines, copy, build, copy back. Returns the exit status. */
  private async build(req: HookRequest, slot: Slot, settings: HookSettings, reader: LineReader): Promise<number> {
    const m = slot.machine;
    const inputsLine = await reader.next();
    const outputsLine = inputsLine === undefined ? undefined : await reader.next();
    if (inputsLine === undefined || outputsLine === undefined) {
      throw new DroverError(`the scheduler closed stdin after '# accept' without sending the ${inputsLine === undefined ? 'inputs' : 'outputs'} line of '${req.drvPath}'`, 1);
    }
    const inputs = parsePathsLine(inputsLine, this.o.storeDir, `inputs line of '${req.drvPath}': path`);
    const outputs = parsePathsLine(outputsLine, this.o.storeDir, `outputs line of '${req.drvPath}': path`);
    if (!inputs.includes(req.drvPath)) inputs.push(req.drvPath);
    if (outputs.length === 0) throw new DroverError(`the outputs line of '${req.drvPath}' names no paths`, 1);
    if (this.o.printBuildTrace) this.o.stderr(buildRemoteLine(req.drvPath, m.uri));
    const ctx = this.ctx(settings);
    const store = new Store({ storeDir: this.o.storeDir, stateDir: this.o.stateDir });
    try {
      let t = Date.now();
      const lap = (what: string) => {
        if (this.o.env.DROVER_HOOK_SSH_DEBUG) this.message(`${what}: ${Date.now() - t} ms`);
        t = Date.now();
      };
      let r: BuildOutcome;
      if (engineFor(m).serveCommand) {
        const session = await openSession(ctx, m);
        lap(`opened a session (${session.t.what})`);
        const s = await runRemoteBuild(ctx, m, store, session, { drv: req.drvPath, inputs, outputs, maxSilentTime: this.o.maxSilentTime }, this.o.logFd);
        if (this.o.env.DROVER_HOOK_SSH_DEBUG) this.message(`uploaded ${s.upload.paths} paths, ${s.upload.bytes} bytes: ${s.upload.ms} ms`);
        r = s.outcome;
      } else {
        const { missing } = await probe(ctx, m, inputs);
        lap(`asked ${m.uri} which of ${inputs.length} inputs it lacks (${missing.length})`);
        const up = missing.length > 0 ? await upload(ctx, m, store, missing) : { paths: 0, bytes: 0 };
        lap(`uploaded ${up.paths} paths, ${up.bytes} bytes`);
        r = await buildAndFetch(ctx, m, store, req.drvPath, outputs, this.o.maxSilentTime, this.o.logFd, drvName(req.drvPath));
      }
      lap(`built and fetched ${r.kind === 'built' ? `${r.bytes} bytes` : 'nothing'}`);
      if (r.kind === 'failed') {
        this.message(`building '${req.drvPath}' on ${m.uri} failed (status ${r.status})`);
        return 100;
      }
      return 0;
    } catch (e) {
      if (e instanceof RemoteError) {
        if (e.backOff) this.health.recordFailure(m, e.message);
        // Printed by runMain on the stderr the scheduler reads: the remote's words in it must not start a line of their own.
        throw new DroverError(printable(`building '${req.drvPath}' on ${m.uri} failed: ${e.message}`), 1);
      }
      // Not the machine's fault: no back-off, the next request sees the fixed file at once.
      if (e instanceof SshKeyError) throw new DroverError(printable(`building '${req.drvPath}' on ${m.uri} failed: ${e.message}`), 1);
      throw e;
    } finally {
      store.close();
    }
  }
}
