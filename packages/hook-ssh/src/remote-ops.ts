// The steps of a remote build on one machine: probe, ask what is missing, upload, build and fetch back.
import fs from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { DroverError, Store, exportPaths, importPaths, removeTree, type ValidPathInfo } from '@drover/store';
import type { Machine } from './machines.js';
import type { HookSettings } from './settings.js';
import { engineFor, parseProbeOutput, REMOTE_EXIT, RemoteProtocolError, type ProbeInfo } from './remote-engine.js';
import { runSsh, startSsh } from './ssh.js';

/**
 * Something went wrong talking to a machine (exit 1). `connection` marks failures of the
 * link itself (refused, dropped, timed out, host key), which put the machine into back-off.
 */
export class RemoteError extends DroverError {
  constructor(
    message: string,
    readonly connection: boolean,
  ) {
    super(message, 1);
  }
}

export interface RemoteContext {
  stateDir: string;
  storeDir: string;
  settings: HookSettings;
  /** The hook's messages (to its stderr). */
  message: (line: string) => void;
}

/** ssh's own exit status for its own failures (connection, authentication, host key). */
const SSH_FAILED = 255;

function sshFailure(r: { code: number | null; signal: NodeJS.Signals | null; sshError: string; stderr?: string }): string {
  const text = r.sshError || (r.stderr ?? '').trim().split('\n').slice(-3).join('; ');
  if (r.signal) return `ssh ended by ${r.signal}${text ? `: ${text}` : ''}`;
  return text || `ssh exited with status ${r.code}`;
}

/**
 * Logs in, checks the remote store dir equals ours and the tools are there, and (when
 * `paths` is given) returns which of them the remote lacks. Refusals name the machine.
 */
export async function probe(ctx: RemoteContext, m: Machine, paths?: readonly string[]): Promise<{ info: ProbeInfo; missing: string[] }> {
  const engine = engineFor(m);
  const timeoutMs = (ctx.settings.connectTimeout + ctx.settings.stallTimeout) * 1000;
  const r = await runSsh(ctx.stateDir, m, ctx.settings, engine.probeAndMissing(paths !== undefined), {
    input: paths ? paths.join('\n') + '\n' : '',
    timeoutMs,
  });
  if (r.timedOut) throw new RemoteError(`${m.uri} did not answer within ${Math.round(timeoutMs / 1000)}s`, true);
  if (r.code === SSH_FAILED) throw new RemoteError(`cannot reach ${m.uri}: ${sshFailure(r)}`, true);
  if (r.code === REMOTE_EXIT.toolMissing) throw new RemoteError(`${m.uri}: ${lastLine(r.stderr)}`, false);
  if (r.code !== 0) {
    throw new RemoteError(`${m.uri}: asking which paths are missing failed (status ${r.code ?? r.signal}): ${lastLine(r.stderr) || 'no message'}`, false);
  }
  let parsed: { info: ProbeInfo; missing: string[] };
  try {
    parsed = parseProbeOutput(r.stdout, ctx.storeDir, m.uri);
  } catch (e) {
    if (e instanceof RemoteProtocolError) throw new RemoteError(e.message, false);
    throw e;
  }
  if (parsed.info.storeDir !== ctx.storeDir) {
    throw new RemoteError(
      `${m.uri} uses the store dir '${parsed.info.storeDir}', not '${ctx.storeDir}' as this machine does; store paths cannot move between different store dirs (set ${m.engine === 'nix' ? 'NIX_STORE_DIR' : 'DROVER_STORE_DIR'} on the remote)`,
      false,
    );
  }
  if (paths) {
    const asked = new Set(paths);
    for (const p of parsed.missing) {
      if (!asked.has(p)) throw new RemoteError(`${m.uri} says it lacks '${p}', which the hook never asked about`, false);
    }
  }
  return parsed;
}

function lastLine(s: string): string {
  return s.trim().split('\n').slice(-1)[0] ?? '';
}

/** MiB with one decimal, for progress lines. */
export function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

/**
 * Feeds a child's stdin with back-pressure, and gives up when nothing drains for the stall
 * limit (a remote that stopped reading, a link that stopped moving).
 */
class StallWatch {
  last = Date.now();
  private timer: NodeJS.Timeout | undefined;
  stalled = false;
  constructor(
    private readonly limitMs: number,
    private readonly onStall: () => void,
  ) {}
  start(): void {
    this.last = Date.now();
    this.timer = setInterval(() => {
      if (Date.now() - this.last > this.limitMs && !this.stalled) {
        this.stalled = true;
        this.onStall();
      }
    }, Math.min(1000, Math.max(50, this.limitMs / 4)));
    this.timer.unref();
  }
  touch(): void {
    this.last = Date.now();
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

export interface UploadResult {
  paths: number;
  bytes: number;
  ms: number;
}

/**
 * Sends `paths` (valid here, missing there) as one export stream into the remote's import.
 * Progress goes to the hook's messages every few seconds; a copy that stops moving for the
 * stall limit is killed and reported.
 */
export async function upload(ctx: RemoteContext, m: Machine, store: Store, paths: readonly string[]): Promise<UploadResult> {
  const started = Date.now();
  let total = 0;
  for (const p of paths) total += store.db.queryPathInfo(p)?.narSize ?? 0;
  const engine = engineFor(m);
  const proc = startSsh(ctx.stateDir, m, ctx.settings, engine.importCommand(), ['pipe', 'ignore', 'pipe']);
  let stderr = '';
  proc.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 65536) stderr += d;
  });
  const stdin = proc.child.stdin as Writable;
  let bytes = 0;
  let broken: Error | undefined;
  const stall = new StallWatch(ctx.settings.stallTimeout * 1000, () => proc.child.kill('SIGKILL'));
  let lastReport = Date.now();
  const report = (final: boolean) => {
    const secs = (Date.now() - started) / 1000;
    const rate = secs > 0 ? ` at ${mib(bytes / secs)}/s` : '';
    ctx.message(`${final ? 'copied' : 'copying'} ${mib(bytes)} of ${mib(total)} to ${m.uri}${rate}`);
  };
  if (total >= 1048576) ctx.message(`copying ${paths.length} path${paths.length === 1 ? '' : 's'} (${mib(total)}) to ${m.uri}`);
  let waiting: { resolve: () => void; reject: (e: Error) => void } | undefined;
  const fail = (e: Error) => {
    broken ??= e;
    waiting?.reject(broken);
    waiting = undefined;
  };
  stdin.on('error', (e) => fail(e));
  stdin.on('drain', () => {
    stall.touch();
    waiting?.resolve();
    waiting = undefined;
  });
  proc.child.once('close', () => fail(new Error('ssh exited while the stream was being sent')));
  stall.start();
  let exportError: unknown;
  try {
    await exportPaths(store, paths, (chunk) => {
      if (broken) throw broken;
      bytes += chunk.length;
      if (Date.now() - lastReport > 3000) {
        lastReport = Date.now();
        report(false);
      }
      if (stdin.write(chunk)) {
        stall.touch();
        return;
      }
      return new Promise<void>((resolve, reject) => {
        waiting = { resolve, reject };
      });
    });
    stdin.end();
  } catch (e) {
    exportError = e;
    stdin.destroy();
    proc.child.kill('SIGKILL');
  }
  const r = await proc.done;
  stall.stop();
  const secs = Math.round(ctx.settings.stallTimeout);
  if (stall.stalled) throw new RemoteError(`copying ${paths.length} paths to it stalled: nothing moved for ${secs}s (after ${mib(bytes)} of ${mib(total)})`, true);
  if (r.code === SSH_FAILED) throw new RemoteError(`the connection dropped while copying ${paths.length} paths to it (after ${mib(bytes)} of ${mib(total)}): ${sshFailure(r)}`, true);
  if (exportError && !(exportError === broken)) throw exportError;
  if (r.code !== 0) {
    throw new RemoteError(`copying ${paths.length} paths to it failed: the remote import exited with status ${r.code ?? r.signal}: ${lastLine(stderr) || 'no message'}`, false);
  }
  if (Date.now() - started > 3000) report(true);
  return { paths: paths.length, bytes, ms: Date.now() - started };
}

/**
 * A view of the local store that admits only the expected paths from an import: a remote
 * that slips any other path into its export stream is refused before anything registers.
 */
class ExpectingStore extends Store {
  constructor(
    base: Store,
    private readonly expected: ReadonlySet<string>,
    private readonly what: string,
  ) {
    super({ storeDir: base.storeDir, stateDir: base.stateDir });
  }
  override async commitPaths(items: readonly { tmp: string; info: ValidPathInfo }[]): Promise<string[]> {
    const stranger = items.find((i) => !this.expected.has(i.info.path));
    if (stranger) {
      for (const i of items) removeTree(i.tmp);
      throw new RemoteError(`${this.what} holds '${stranger.info.path}', which is not an output of this build; nothing was registered`, false);
    }
    return super.commitPaths(items);
  }
}

export type BuildOutcome = { kind: 'built'; bytes: number } | { kind: 'failed'; status: number };

/**
 * Builds `drv` on the machine with its log going to `logFd`, then streams the outputs back
 * through a local import (which registers them). The remote build is killed by the remote
 * watchdog when this process or the connection goes away.
 */
export async function buildAndFetch(
  ctx: RemoteContext,
  m: Machine,
  store: Store,
  drv: string,
  outputs: readonly string[],
  maxSilentTime: number,
  logFd: number | 'inherit',
  name: string,
): Promise<BuildOutcome> {
  const engine = engineFor(m);
  const proc = startSsh(ctx.stateDir, m, ctx.settings, engine.buildCommand(drv, outputs, maxSilentTime), ['pipe', 'pipe', 'pipe']);
  const log = engine.logPrefix ? new PrefixStripper(engine.logPrefix(name)) : undefined;
  const logOut = logFd === 'inherit' ? process.stderr : fs.createWriteStream('', { fd: logFd, autoClose: false });
  logOut.on('error', () => {});
  proc.child.stderr!.on('data', (c: Buffer) => logOut.write(log ? log.push(c) : c));
  // stdin stays open and silent: its end of file is what tells the remote to stop.
  const stdin = proc.child.stdin!;
  stdin.on('error', () => {});
  const stdout = proc.child.stdout as Readable;
  const stall = new StallWatch(ctx.settings.stallTimeout * 1000, () => proc.child.kill('SIGKILL'));
  let bytes = 0;
  let first = true;
  async function* tracked(): AsyncGenerator<Buffer> {
    for await (const c of stdout) {
      // The stream starts when the build is over: only from then on is silence a stall.
      if (first) {
        first = false;
        stall.start();
      }
      stall.touch();
      bytes += (c as Buffer).length;
      yield c as Buffer;
    }
  }
  const what = `the output stream from ${m.uri}`;
  const guard = new ExpectingStore(store, new Set(outputs), what);
  const imported = importPaths(guard, tracked(), { what }).then(
    (paths) => ({ ok: true as const, paths }),
    (error: unknown) => ({ ok: false as const, error }),
  );
  const r = await proc.done;
  stall.stop();
  const imp = await imported;
  guard.close();
  stdin.destroy();
  if (stall.stalled) throw new RemoteError(`copying the outputs back stalled: nothing moved for ${Math.round(ctx.settings.stallTimeout)}s (after ${mib(bytes)})`, true);
  if (r.code === SSH_FAILED) throw new RemoteError(`the connection dropped ${first ? 'during the build' : 'while copying the outputs back'}: ${sshFailure(r)}`, true);
  if (r.code !== null && r.code >= 100 && r.code <= 104) return { kind: 'failed', status: r.code };
  if (r.code === REMOTE_EXIT.buildToolFailed) throw new RemoteError(`${engine.name === 'nix' ? 'nix-store' : 'drover-build'} there failed without it being a build failure (see the build log)`, false);
  if (r.code === REMOTE_EXIT.exportFailed) throw new RemoteError(`the build succeeded but exporting its outputs there failed (see the build log)`, false);
  if (r.code === REMOTE_EXIT.toolMissing) throw new RemoteError(`a remote tool is missing (see the build log)`, false);
  if (r.code !== 0) throw new RemoteError(`the remote command ended with ${r.signal ? `signal ${r.signal}` : `status ${r.code}`}`, false);
  if (!imp.ok) {
    if (imp.error instanceof RemoteError) throw imp.error;
    const msg = (imp.error as Error).message;
    throw new RemoteError(`${msg.startsWith(what) ? msg : `${what}: ${msg}`}; nothing was registered`, false);
  }
  const missing = outputs.filter((o) => !store.db.isValid(o));
  if (missing.length > 0) throw new RemoteError(`${what}: the stream lacks ${missing.map((p) => `'${p}'`).join(', ')}`, false);
  return { kind: 'built', bytes };
}

/**
 * Removes a fixed prefix from the start of every line of a byte stream (drover-build -L
 * marks each log line with `NAME> `; the build log of the protocol is the builder's own bytes).
 */
export class PrefixStripper {
  private atLineStart = true;
  private pending: Buffer = Buffer.alloc(0);
  private readonly prefix: Buffer;
  constructor(prefix: string) {
    this.prefix = Buffer.from(prefix);
  }
  push(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    let data = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    while (data.length > 0) {
      if (this.atLineStart) {
        const n = Math.min(data.length, this.prefix.length);
        if (data.subarray(0, n).equals(this.prefix.subarray(0, n))) {
          if (n < this.prefix.length) {
            this.pending = data;
            break;
          }
          data = data.subarray(n);
        }
        this.atLineStart = false;
        continue;
      }
      const nl = data.indexOf(10);
      if (nl < 0) {
        out.push(data);
        break;
      }
      out.push(data.subarray(0, nl + 1));
      data = data.subarray(nl + 1);
      this.atLineStart = true;
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }
}

/** Whether fd 4 (the build log pipe of the protocol) is open in this process. */
export function logFdOpen(fd = 4): boolean {
  try {
    fs.fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}
