// Running commands on a machine with the real OpenSSH client, over one shared master connection per machine.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { DroverError } from '@drover/store';
import type { Machine } from './machines.js';
import type { HookSettings } from './settings.js';

/** Where the hook keeps its ssh files: control sockets, pinned known_hosts, ssh's own logs. */
export function sshDir(stateDir: string): string {
  return path.join(stateDir, 'hook-ssh');
}

// A Unix socket path must fit in sun_path (108 bytes on Linux), and ssh first binds the
// name plus a 17-byte temporary suffix; a deep state dir falls back to a private dir under /tmp.
const MAX_SOCKET_PATH = 107;
const SOCKET_NAME = 20;

function controlDir(stateDir: string): string {
  const dir = path.join(sshDir(stateDir), 'ctl');
  if (dir.length + 1 + SOCKET_NAME + 17 <= MAX_SOCKET_PATH) return dir;
  const short = path.join(os.tmpdir(), `drover-ssh-${process.getuid?.() ?? 0}`, createHash('sha256').update(stateDir).digest('hex').slice(0, 12));
  return short;
}

function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.statSync(dir);
  if (process.getuid && st.uid !== process.getuid()) throw new Error(`ssh control directory '${dir}' belongs to another user`);
}

/**
 * The control socket of a machine. Its name covers everything that decides whom the master
 * talks to and how it authenticated (user, host, port, key, pinned host key, extra options),
 * so a changed machines line never reuses a master made under the old one.
 */
export function controlPath(stateDir: string, m: Machine, s: HookSettings): string {
  const h = createHash('sha256')
    .update(JSON.stringify([m.sshHost, m.port ?? 22, m.sshKey ?? '', m.hostKey ?? '', s.sshOpts]))
    .digest('hex')
    .slice(0, SOCKET_NAME);
  return path.join(controlDir(stateDir), h);
}

/** known_hosts holding only the pinned key, under an alias so the port needs no brackets. */
function pinnedKnownHosts(stateDir: string, m: Machine): { file: string; alias: string } {
  const alias = `drover-${m.id}`;
  const dir = path.join(sshDir(stateDir), 'known_hosts');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, m.id);
  const want = `${alias} ${m.hostKey}\n`;
  let have = '';
  try {
    have = fs.readFileSync(file, 'utf8');
  } catch {
    /* first use */
  }
  if (have !== want) {
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
    fs.writeFileSync(tmp, want, { mode: 0o600 });
    fs.renameSync(tmp, file);
  }
  return { file, alias };
}

/** ssh's arguments up to (and including) the destination; the remote command follows. */
export function sshArgs(stateDir: string, m: Machine, s: HookSettings, opts: { logFile?: string; shared?: boolean; forward?: boolean } = {}): string[] {
  const a: string[] = [];
  const o = (kv: string) => a.push('-o', kv);
  if (opts.shared ?? s.shareConnection) {
    const cp = controlPath(stateDir, m, s);
    ensurePrivateDir(path.dirname(cp));
    o('ControlMaster=auto');
    o(`ControlPath=${cp}`);
    o(`ControlPersist=${Math.round(s.controlPersist)}`);
  } else {
    o('ControlMaster=no');
    o('ControlPath=none');
  }
  o('BatchMode=yes');
  o(`ConnectTimeout=${Math.max(1, Math.round(s.connectTimeout))}`);
  o(`ServerAliveInterval=${Math.max(1, Math.round(s.aliveInterval))}`);
  o(`ServerAliveCountMax=${s.aliveCount}`);
  o('ForwardAgent=no');
  o('ForwardX11=no');
  // Forwards from the user's ssh config do not belong on the hook's connections; the agent's
  // socket forward is asked of the master later (`-O forward`), and a stale socket file of an
  // old master must not block it.
  if (!opts.forward) o('ClearAllForwardings=yes');
  o('StreamLocalBindUnlink=yes');
  o('RequestTTY=no');
  if (m.sshKey) {
    a.push('-i', m.sshKey);
    o('IdentitiesOnly=yes');
  }
  if (m.hostKey) {
    const kh = pinnedKnownHosts(stateDir, m);
    o(`UserKnownHostsFile=${kh.file}`);
    o('GlobalKnownHostsFile=/dev/null');
    o(`HostKeyAlias=${kh.alias}`);
    o('StrictHostKeyChecking=yes');
    o('UpdateHostKeys=no');
  }
  if (m.port !== undefined) a.push('-p', String(m.port));
  if (opts.logFile) a.push('-E', opts.logFile);
  a.push(...s.sshOpts);
  // After the user's options: for ssh the first value given wins, so DROVER_SSHOPTS can
  // say otherwise. Store paths are mostly compressed or binary, and a farm's link is fast:
  // compression would cost more CPU than the bytes it saves.
  o('Compression=no');
  if (s.ciphers) o(`Ciphers=${s.ciphers}`);
  a.push('--', m.sshHost);
  return a;
}

/** A file for ssh's own messages (-E), so they never mix with what the remote prints. */
export function sshLogFile(stateDir: string): string {
  const dir = path.join(sshDir(stateDir), 'logs');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return path.join(dir, `${process.pid}-${randomBytes(4).toString('hex')}.log`);
}

/** ssh's own messages from its -E log, trimmed, and the file removed. */
export function takeSshLog(file: string, m?: Machine): string {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
    fs.rmSync(file, { force: true });
  } catch {
    /* ssh never wrote it */
  }
  return summariseSshLog(text, m);
}

/**
 * ssh's messages as one line for the hook's errors. Its banners (a changed host key, an
 * unprotected key file) are dropped: they fill a screen with advice about files drover
 * regenerates. A failed host key check becomes its short reason and, for a key pinned in the
 * machines file, which line pins it and the two fingerprints.
 */
export function summariseSshLog(text: string, m?: Machine): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^Warning: Permanently added/.test(l));
  if (lines.includes('Host key verification failed.')) return hostKeyFailure(lines, m);
  return lines.filter((l) => !BANNER.some((re) => re.test(l))).join('; ');
}

/** Lines of ssh's warning banners, which say nothing a one-line error needs. */
const BANNER = [
  /^@+$/,
  /^@.*@$/,
  /^IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!$/,
  /^Someone could be eavesdropping on you/,
  /^It is also possible that a host key has just been changed\.$/,
  /^Please contact your system administrator\.$/,
  /^It is required that your private key files are NOT accessible by others\.$/,
  /^This private key will be ignored\.$/,
];

function hostKeyFailure(lines: string[], m?: Machine): string {
  // "The fingerprint for the ED25519 key sent by the remote host is" / "SHA256:….".
  const at = lines.findIndex((l) => /^The fingerprint for the \S+ key sent by the remote host is$/.test(l));
  const type = at >= 0 ? /^The fingerprint for the (\S+) key/.exec(lines[at]!)![1]! : undefined;
  const presented = at >= 0 ? lines[at + 1]?.replace(/\.$/, '') : undefined;
  const shown = type ? `the ${type} key${presented ? ` ${presented}` : ''}` : 'its key';
  if (m?.hostKey) {
    return (
      `Host key verification failed: the host key pinned in field 8 (HOST_KEY_BASE64) of line ${m.line} of the machines file '${m.file}' ` +
      `(${hostKeyFingerprint(m.hostKey)}) does not match ${shown} that the host presents`
    );
  }
  const why = lines.filter((l) => /^(Offending \S+ key in |No \S+ host key is known for |Host key for \S+ has changed)/.test(l));
  return `Host key verification failed${why.length ? `: ${why.join('; ')}` : ''}${presented ? ` (the host presents ${shown})` : ''}`;
}

/** `SHA256:…` of a `TYPE BASE64` public key, as ssh prints fingerprints. */
export function hostKeyFingerprint(key: string): string {
  const blob = Buffer.from(key.split(' ')[1] ?? '', 'base64');
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** A machine's SSH key that ssh cannot use: exit 1, naming the key and the machines file line that names it. */
export class SshKeyError extends DroverError {
  constructor(message: string) {
    super(message, 1);
  }
}

/**
 * Why the machine's SSH key (field 3 or `?ssh-key=`) cannot be used, or undefined. Checked
 * before each connection: ssh itself says only "Permission denied (publickey)" into its log,
 * its reason ("Identity file … not accessible") going to a stderr the remote's output shares.
 */
export function sshKeyProblem(m: Machine): string | undefined {
  if (!m.sshKey) return undefined;
  const named = `the SSH key '${m.sshKey}' named on line ${m.line} of the machines file '${m.file}'`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(m.sshKey, 'r');
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return `${named} is not readable: it is ${st.isDirectory() ? 'a directory' : 'not a regular file'}`;
    // ssh ignores a key file of its user that others may read ("UNPROTECTED PRIVATE KEY FILE").
    if ((st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) {
      return `${named} cannot be used: others may read it (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}), so ssh ignores it; chmod 600 '${m.sshKey}'`;
    }
    fs.readSync(fd, Buffer.alloc(1), 0, 1, 0);
    return undefined;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.message;
    return `${named} is not readable: ${why}`;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** How long a finished ssh's pipes may stay open before we stop reading them. */
const PIPE_GRACE_MS = 2000;

export interface SshProcess {
  child: ChildProcess;
  logFile: string;
  /** Resolves with ssh's exit code (255: ssh itself failed) or the signal that ended it, and ssh's own messages. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; sshError: string }>;
}

/**
 * Starts `ssh … -- HOST COMMAND`. The remote command is one string for the remote shell.
 * Throws SshKeyError, before any connection, when the machine's SSH key cannot be used.
 */
export function startSsh(stateDir: string, m: Machine, s: HookSettings, command: string, stdio: StdioOptions, opts: { shared?: boolean } = {}): SshProcess {
  const keyProblem = sshKeyProblem(m);
  if (keyProblem) throw new SshKeyError(keyProblem);
  const logFile = sshLogFile(stateDir);
  const child = spawn('ssh', [...sshArgs(stateDir, m, s, { logFile, shared: opts.shared }), command], { stdio });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; sshError: string }>((resolve) => {
    let spawnError = '';
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let settled = false;
    const finish = () => {
      if (settled || !exited) return;
      settled = true;
      const msg = takeSshLog(logFile, m);
      resolve({ code: spawnError ? 255 : exited.code, signal: exited.signal, sshError: spawnError || msg });
    };
    child.once('error', (e) => {
      spawnError = `cannot run ssh: ${e.message}`;
      exited ??= { code: 255, signal: null };
      finish();
    });
    child.once('close', () => finish());
    // A multiplexed ssh hands its stdio to the master, which may hold our pipes open after
    // the client is gone (until the remote command ends): after exit, wait a moment for the
    // last output, then stop waiting for the pipes.
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      // Not unref'd: when the pipes stay open and nothing else is pending, this timer is what
      // settles `done` (unref'd, the event loop ran dry first and the hook stopped unfinished).
      setTimeout(() => {
        for (const s of [child.stdin, child.stdout, child.stderr]) s?.destroy();
        finish();
      }, signal ? 0 : PIPE_GRACE_MS);
    });
  });
  return { child, logFile, done };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  sshError: string;
  /** True when the hook killed ssh for taking longer than the limit. */
  timedOut: boolean;
}

/**
 * Runs a short remote command, feeding `input` and collecting its output (bounded), killing
 * ssh when it takes longer than `timeoutMs` (a machine that accepts but never answers).
 */
export async function runSsh(
  stateDir: string,
  m: Machine,
  s: HookSettings,
  command: string,
  opts: { input?: string; timeoutMs: number; shared?: boolean; maxOutput?: number },
): Promise<RunResult> {
  const p = startSsh(stateDir, m, s, command, ['pipe', 'pipe', 'pipe'], { shared: opts.shared });
  const max = opts.maxOutput ?? 16 * 1024 * 1024;
  let stdout = '';
  let stderr = '';
  p.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    if (stdout.length < max) stdout += d;
  });
  p.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 65536) stderr += d;
  });
  p.child.stdin!.on('error', () => {
    /* the remote may exit before reading all input; its exit status tells */
  });
  p.child.stdin!.end(opts.input ?? '');
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.child.kill('SIGKILL');
  }, opts.timeoutMs);
  const r = await p.done;
  clearTimeout(timer);
  return { ...r, stdout, stderr, timedOut };
}

/** Quotes a word for a POSIX shell. */
export function sq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
