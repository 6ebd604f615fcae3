// A build farm for tests and benchmarks: real sshd processes on loopback, each "machine" with its own store behind the same store dir path.
//
// Every machine is an `sshd -D` started under `unshare --mount --propagation private` with
// its own directories bind-mounted over the local store dir and state dir, so a remote
// drover (or Nix) sees the very paths the local one sees, backed by different disks. The
// namespace's processes are the machine: stopping it kills exactly those, by pid.
// Needs root (mount namespaces, PermitRootLogin) and Debian's openssh-server, util-linux.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { localSystem } from './system.js';

export { localSystem };

/** The repository root (this file runs from packages/hook-ssh/dist/). */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** Where npm links every drover binary. */
export const BIN_DIR = path.join(REPO, 'node_modules', '.bin');

export interface MachineLineOptions {
  systems?: string;
  maxJobs?: number;
  speedFactor?: number;
  supportedFeatures?: string[];
  mandatoryFeatures?: string[];
  /** Pin this base64 host key instead of the machine's own (e.g. a wrong one). */
  hostKeyBase64?: string | null;
  /** URI options such as `engine=nix`, `remote-program=/x`. */
  uriOptions?: Record<string, string>;
  /** Use this SSH key instead of the farm's user key. */
  sshKey?: string;
}

export class SshMachine {
  proc: ChildProcess | undefined;
  port = 0;
  private mntNs: string | undefined;
  private listenerPid: number | undefined;
  readonly hostKey: string;
  readonly hostKeyBase64: string;
  /** Environment of this machine's sessions only, over the farm's (takes effect on the next start). */
  extraEnv: Record<string, string> = {};

  constructor(
    readonly farm: Farm,
    readonly name: string,
    readonly dir: string,
  ) {
    fs.mkdirSync(path.join(dir, 'store'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'state'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'nix-conf'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'nix-log'), { recursive: true });
    // The machine's own home: root's real one may run slow shell start-up files for every command.
    fs.mkdirSync(path.join(dir, 'home'), { recursive: true });
    fs.writeFileSync(
      path.join(dir, 'nix-conf', 'nix.conf'),
      'sandbox = false\nbuild-users-group =\nexperimental-features = nix-command\nsubstituters =\n',
    );
    keygen(path.join(dir, 'host_key'), `host-${name}`);
    this.hostKey = fs.readFileSync(path.join(dir, 'host_key.pub'), 'utf8').trim();
    this.hostKeyBase64 = Buffer.from(this.hostKey).toString('base64');
  }

  get storeBacking(): string {
    return path.join(this.dir, 'store');
  }
  get stateBacking(): string {
    return path.join(this.dir, 'state');
  }

  /** The bind mounts that make this machine: its store, its state, its home. */
  private mounts(): string {
    return [
      `mount --bind ${sh(this.storeBacking)} ${sh(this.farm.storeDir)}`,
      `mount --bind ${sh(this.stateBacking)} ${sh(this.farm.stateDir)}`,
      `mount --bind ${sh(path.join(this.dir, 'home'))} ${sh(os.homedir())}`,
    ].join(' && ');
  }

  /** The environment every session on this machine gets (sshd's SetEnv). */
  remoteEnv(): Record<string, string> {
    return {
      PATH: `${this.farm.remoteBinDir}:/usr/local/bin:/usr/bin:/bin`,
      DROVER_STORE_DIR: this.farm.storeDir,
      DROVER_STATE_DIR: this.farm.stateDir,
      NIX_STORE_DIR: this.farm.storeDir,
      NIX_STATE_DIR: this.farm.stateDir,
      NIX_LOG_DIR: path.join(this.dir, 'nix-log'),
      NIX_CONF_DIR: path.join(this.dir, 'nix-conf'),
      DROVER_TEST_MACHINE: this.name,
      ...this.farm.extraRemoteEnv,
      ...this.extraEnv,
    };
  }

  private writeConfig(): string {
    const env = Object.entries(this.remoteEnv())
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    const conf = path.join(this.dir, 'sshd_config');
    fs.writeFileSync(
      conf,
      [
        `Port ${this.port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${path.join(this.dir, 'host_key')}`,
        `AuthorizedKeysFile ${path.join(this.farm.dir, 'authorized_keys')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        'UseDNS no',
        'MaxSessions 100',
        'MaxStartups 100:30:200',
        `PidFile ${path.join(this.dir, 'sshd.pid')}`,
        `SetEnv ${env}`,
        'LogLevel INFO',
        '',
      ].join('\n'),
    );
    return conf;
  }

  /** Starts (or restarts) the machine's sshd and waits until it accepts connections. */
  async start(): Promise<void> {
    if (this.running) return;
    fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    for (let attempt = 0; ; attempt++) {
      if (!this.port || attempt > 0) this.port = await freePort();
      const conf = this.writeConfig();
      const log = fs.openSync(path.join(this.dir, 'sshd.log'), 'a');
      const script = `${this.mounts()} && exec /usr/sbin/sshd -D -e -f ${sh(conf)}`;
      const proc = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], {
        stdio: ['ignore', log, log],
      });
      fs.closeSync(log);
      this.proc = proc;
      const up = await waitForPort(this.port, proc, 5000);
      if (up) {
        this.listenerPid = proc.pid!;
        this.mntNs = fs.readlinkSync(`/proc/${proc.pid}/ns/mnt`);
        return;
      }
      if (attempt >= 3) {
        throw new Error(`sshd of machine ${this.name} did not start: ${fs.readFileSync(path.join(this.dir, 'sshd.log'), 'utf8').slice(-2000)}`);
      }
    }
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Every process living in this machine's mount namespace (its sshd and all sessions). */
  pids(): number[] {
    if (!this.mntNs) return [];
    const out: number[] = [];
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        if (fs.readlinkSync(`/proc/${name}/ns/mnt`) === this.mntNs) out.push(Number(name));
      } catch {
        /* gone meanwhile */
      }
    }
    return out;
  }

  /** Command lines of the machine's processes (to see whether a remote build still runs). */
  processes(): { pid: number; cmd: string }[] {
    return this.pids().flatMap((pid) => {
      try {
        return [{ pid, cmd: fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim() }];
      } catch {
        return [];
      }
    });
  }

  /**
   * Drops every connection but leaves sshd listening: kills the per-connection sshd
   * processes, so the remote commands lose their connection as they would on a network cut.
   */
  killSessions(): number {
    let n = 0;
    for (const { pid, cmd } of this.processes()) {
      if (pid === this.listenerPid || !cmd.startsWith('sshd:')) continue;
      try {
        process.kill(pid, 'SIGKILL');
        n++;
      } catch {
        /* gone */
      }
    }
    return n;
  }

  /** Takes the machine off the network: sshd and all its sessions die. */
  async stop(): Promise<void> {
    for (let round = 0; round < 50; round++) {
      const pids = this.pids();
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await sleep(20);
    }
    if (this.running) await new Promise((r) => this.proc!.once('exit', r));
  }

  /**
   * Runs a command with this machine's view of the store (a fresh namespace with the same
   * bind mounts and environment), whether or not its sshd runs.
   */
  run(argv: string[], opts: { input?: string | Buffer } = {}): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
    const script = `${this.mounts()} && exec ${argv.map(sh).join(' ')}`;
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], {
      env: { ...process.env, ...this.remoteEnv() },
      input: opts.input,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
  }

  /** Store paths present on this machine's disk (valid or not), by name. */
  storeEntries(): string[] {
    return fs.readdirSync(this.storeBacking).filter((n) => !n.endsWith('.lock'));
  }

  /** Empties this machine's store and validity DB (nothing may be running on it), so the next copy sends everything again. */
  clearStore(): void {
    spawnSync('chmod', ['-R', 'u+w', this.storeBacking]);
    for (const n of fs.readdirSync(this.storeBacking)) fs.rmSync(path.join(this.storeBacking, n), { recursive: true, force: true });
    fs.rmSync(path.join(this.stateBacking, 'db'), { recursive: true, force: true });
  }

  /** A machines-file line for this machine, with the farm's key and this machine's host key pinned. */
  line(o: MachineLineOptions = {}): string {
    const opts = Object.entries(o.uriOptions ?? {})
      .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
      .join('&');
    const hk = o.hostKeyBase64 === null ? '-' : (o.hostKeyBase64 ?? this.hostKeyBase64);
    const list = (l?: string[]) => (l && l.length ? l.join(',') : '-');
    return [
      `ssh://root@127.0.0.1:${this.port}${opts ? '?' + opts : ''}`,
      o.systems ?? this.farm.system,
      o.sshKey ?? this.farm.userKey,
      String(o.maxJobs ?? 1),
      String(o.speedFactor ?? 1),
      list(o.supportedFeatures),
      list(o.mandatoryFeatures),
      hk,
    ].join(' ');
  }

  get uri(): string {
    return `ssh://root@127.0.0.1:${this.port}`;
  }
}

export interface FarmOptions {
  /** How many machines. */
  machines: number;
  /** Extra environment for every remote session. */
  remoteEnv?: Record<string, string>;
  /** Directory put first on the remote PATH (default: the repo's node_modules/.bin). */
  remoteBinDir?: string;
}

export class Farm {
  readonly dir: string;
  readonly storeDir: string;
  readonly stateDir: string;
  readonly userKey: string;
  readonly machines: SshMachine[] = [];
  readonly system: string;
  readonly remoteBinDir: string;
  readonly extraRemoteEnv: Record<string, string>;

  constructor(opts: FarmOptions) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-farm-'));
    this.storeDir = path.join(this.dir, 'store');
    this.stateDir = path.join(this.dir, 'state');
    fs.mkdirSync(this.storeDir);
    fs.mkdirSync(this.stateDir);
    this.system = localSystem();
    this.remoteBinDir = opts.remoteBinDir ?? BIN_DIR;
    this.extraRemoteEnv = opts.remoteEnv ?? {};
    this.userKey = path.join(this.dir, 'user_key');
    keygen(this.userKey, 'drover-test-user');
    fs.writeFileSync(path.join(this.dir, 'authorized_keys'), fs.readFileSync(`${this.userKey}.pub`));
    for (let i = 0; i < opts.machines; i++) {
      this.machines.push(new SshMachine(this, `m${i + 1}`, path.join(this.dir, `machine-${i + 1}`)));
    }
  }

  static async start(opts: FarmOptions): Promise<Farm> {
    const farm = new Farm(opts);
    try {
      await Promise.all(farm.machines.map((m) => m.start()));
    } catch (e) {
      await farm.close();
      throw e;
    }
    return farm;
  }

  /** Environment for local drover tools on this farm's store. */
  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      ...process.env,
      PATH: `${BIN_DIR}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      DROVER_STORE_DIR: this.storeDir,
      DROVER_STATE_DIR: this.stateDir,
      NIX_STORE_DIR: this.storeDir,
      NIX_STATE_DIR: this.stateDir,
      ...extra,
    };
  }

  /** Writes a machines file and returns its path. */
  machinesFile(lines: string[], name = 'machines'): string {
    const f = path.join(this.dir, name);
    fs.writeFileSync(f, lines.join('\n') + '\n');
    return f;
  }

  /** Stops every machine, closes shared ssh masters this farm's state dir holds, removes the files. */
  async close(): Promise<void> {
    await Promise.all(this.machines.map((m) => m.stop()));
    closeMasters(this.stateDir);
    spawnSync('chmod', ['-R', 'u+w', this.dir]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Ends the ControlPersist masters whose sockets live under a state dir: `ssh -O exit` asks
 * each one to go (they are ours: started by the hook processes of this test).
 */
export function closeMasters(stateDir: string): void {
  const dir = path.join(stateDir, 'hook-ssh', 'ctl');
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    spawnSync('ssh', ['-o', `ControlPath=${path.join(dir, n)}`, '-O', 'exit', 'drover-farm'], { stdio: 'ignore', timeout: 5000 });
  }
}


function keygen(file: string, comment: string): void {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
}

export function sh(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, proc: ChildProcess, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) return false;
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return true;
    await sleep(25);
  }
  return false;
}
