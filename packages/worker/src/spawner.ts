// Starts builders from a small long-lived shell instead of from Node itself.
//
// Why: Node starts a child with fork(), which copies the page tables of the whole Node
// process; here that costs 3-6 ms of the event loop per builder, more than a trivial build
// does. A shell forks in a fraction of that, on another core, while the scheduler goes on.
// Each job is a few lines of shell (written by `jobScript`) that run the builder with
// exactly the environment given, in its own session (setsid: a process group that
// timeouts kill whole), its stdout and stderr in one file; the shell reports `S ID PID`
// when it starts and `E ID STATUS` when it ends. When the scheduler dies, however it dies,
// the shell reads EOF and every builder's process group gets SIGKILL.
import fs from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { LineSplitter } from './build-log.js';
import { killGroup, type ExitInfo } from './processes.js';

// The shell reads its jobs as its own script from stdin (`sh -s`): it reads in blocks,
// where a `read` loop would read one byte per system call. At EOF it exits; its EXIT trap
// sends SIGTERM to its process group, the waiting subshells, whose TERM traps kill their
// builders' process groups.
const PROLOGUE = `trap 'trap "" TERM; kill -TERM 0' EXIT\n`;

/** A shell word for any string: single quotes, with `'` written as `'\\''`. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const LAUNCHER_DIED: ExitInfo = { status: 1, description: "drover-build's builder launcher (/bin/sh) was killed", launcherDied: true };

export function findTool(name: string): string | undefined {
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    try {
      fs.accessSync(`${dir}/${name}`, fs.constants.X_OK);
      return `${dir}/${name}`;
    } catch {
      /* next */
    }
  }
  return undefined;
}

export interface SpawnRequest {
  cwd: string;
  env: Record<string, string>;
  cmd: string;
  args: readonly string[];
  /** stdout and stderr go here (truncated first). */
  logFile: string;
}

export interface SpawnedJob {
  readonly exit: Promise<ExitInfo>;
  kill(): void;
}

interface JobState {
  pid: number | undefined;
  killed: boolean;
  resolve: (e: ExitInfo) => void;
}

export class Spawner {
  private readonly sh: ChildProcess;
  private readonly jobs = new Map<number, JobState>();
  private nextId = 1;
  private dead = false;

  private constructor(private readonly setsid: string) {
    this.sh = spawn('/bin/sh', ['-s'], {
      // The builders' environment is built from nothing: the shell gets none to pass on.
      env: {},
      detached: true,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.sh.stdin!.on('error', () => {});
    this.sh.stdin!.write(PROLOGUE);
    const lines = new LineSplitter((l) => this.onLine(l));
    this.sh.stdout!.on('data', (c: Buffer) => lines.push(c));
    this.sh.once('exit', () => this.onDeath());
    this.sh.once('error', () => this.onDeath());
  }

  /** A spawner, when /bin/sh and setsid are here; else undefined. */
  static create(): Spawner | undefined {
    const setsid = findTool('setsid');
    if (!setsid || !fs.existsSync('/bin/sh')) return undefined;
    return new Spawner(setsid);
  }

  /** Whether `env` can be given through the shell (variable names it can export). */
  static canPass(env: Record<string, string>): boolean {
    return Object.keys(env).every((k) => NAME.test(k));
  }

  get alive(): boolean {
    return !this.dead;
  }

  private onLine(line: string): void {
    const m = /^([SE]) (\d+) (\d+)$/.exec(line);
    if (!m) return;
    const job = this.jobs.get(Number(m[2]));
    if (!job) {
      // A builder that started just before the shell died, its line read after the death.
      if (m[1] === 'S' && this.dead) this.killPid(Number(m[3]));
      return;
    }
    if (m[1] === 'S') {
      job.pid = Number(m[3]);
      if (job.killed) this.killPid(job.pid);
    } else {
      this.jobs.delete(Number(m[2]));
      const status = Number(m[3]);
      job.resolve(
        status > 128 && job.killed ? { status, description: `signal ${signalName(status - 128)}` } : status > 128 ? { status, description: `exit code ${status} (or signal ${signalName(status - 128)})` } : { status, description: `exit code ${status}` },
      );
    }
  }

  private onDeath(): void {
    this.dead = true;
    // The shell's waiters (its process group) outlive it; their TERM trap kills their
    // builders' groups, also those whose start the shell had not reported yet.
    killGroup(this.sh.pid, 'SIGTERM');
    for (const [id, j] of this.jobs) {
      this.jobs.delete(id);
      // Builders run in sessions of their own: the shell's death does not end them.
      if (j.pid !== undefined) this.killPid(j.pid);
      j.resolve(LAUNCHER_DIED);
    }
  }

  private killPid(pid: number): void {
    // The group exists once setsid has run; before that, the process itself is the target.
    killGroup(pid, 'SIGKILL');
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }

  /** The shell lines that run one job. */
  jobScript(id: number, r: SpawnRequest): string {
    let exports = '';
    for (const [k, v] of Object.entries(r.env)) exports += ` ${k}=${shellQuote(v)}`;
    const argv = [this.setsid, r.cmd, ...r.args].map(shellQuote).join(' ');
    // The waiter's TERM trap is reset in the builder's subshell, so only the waiter runs it.
    // The shell's notice of a builder killed ("Killed", at the wait) is not for the user; its
    // other complaints (a log file it cannot create) are.
    return (
      `{ trap 'kill -KILL -$p 2>/dev/null; exit 1' TERM; ` +
      `( cd ${shellQuote(r.cwd)} || exit 127; unset OLDPWD; export${exports}; exec ${argv} ) </dev/null >${shellQuote(r.logFile)} 2>&1 & ` +
      `p=$!; echo "S ${id} $p"; wait $p 2>/dev/null; echo "E ${id} $?"; } &\n`
    );
  }

  start(r: SpawnRequest): SpawnedJob {
    const id = this.nextId++;
    let resolve!: (e: ExitInfo) => void;
    const exit = new Promise<ExitInfo>((res) => (resolve = res));
    const job: JobState = { pid: undefined, killed: false, resolve };
    if (this.dead) {
      resolve(LAUNCHER_DIED);
    } else {
      this.jobs.set(id, job);
      this.sh.stdin!.write(this.jobScript(id, r));
    }
    return {
      exit,
      kill: () => {
        job.killed = true;
        if (job.pid !== undefined) this.killPid(job.pid);
      },
    };
  }

  /** Ends the shell (it kills whatever it still runs). */
  close(): void {
    this.sh.stdin!.end();
  }
}

function signalName(n: number): string {
  const names: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 9: 'SIGKILL', 15: 'SIGTERM', 6: 'SIGABRT', 11: 'SIGSEGV', 13: 'SIGPIPE' };
  return names[n] ?? `${n}`;
}
