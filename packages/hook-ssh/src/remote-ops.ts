// The steps of a remote build on one machine: probe, ask what is missing, upload, build and fetch back.
import fs from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import type { ChildProcess } from 'node:child_process';
import { DroverError, Store, exportPaths, importPaths, removeTree, type StoreDb, type ValidPathInfo } from '@drover/store';
import type { Machine } from './machines.js';
import type { HookSettings } from './settings.js';
import { engineFor, parseProbeOutput, REMOTE_EXIT, RemoteProtocolError, type ProbeInfo } from './remote-engine.js';
import { runSsh, startSsh } from './ssh.js';
import { PrefixStripper } from './log-prefix.js';

/**
 * Something went wrong talking to a machine (exit 1). `backOff` marks failures that say the
 * machine cannot take builds now — the link itself (refused, dropped, timed out, host key) or
 * a remote end that does not answer or does not speak the session protocol — which put the
 * machine into back-off. Others (the build's own failure there, a path that rotted here) do not.
 */
export class RemoteError extends DroverError {
  constructor(
    message: string,
    readonly backOff: boolean,
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
export const SSH_FAILED = 255;

export function sshFailure(r: { code: number | null; signal: NodeJS.Signals | null; sshError: string; stderr?: string }): string {
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

export function lastLine(s: string): string {
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
export class StallWatch {
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
 * Streams the export of `paths` into `sink` (ssh's stdin) with back-pressure; prints progress
 * every few seconds for large copies; kills the child when nothing drains for the stall
 * limit. The sink is ended after the stream.
 */
export async function pumpExport(
  ctx: RemoteContext,
  m: Machine,
  store: Store,
  paths: readonly string[],
  child: ChildProcess,
): Promise<{ bytes: number; total: number; ms: number; stalled: boolean; error?: unknown }> {
  const started = Date.now();
  let total = 0;
  for (const p of paths) total += store.db.queryPathInfo(p)?.narSize ?? 0;
  const sink = child.stdin as Writable;
  let bytes = 0;
  let broken: Error | undefined;
  const stall = new StallWatch(ctx.settings.stallTimeout * 1000, () => child.kill('SIGKILL'));
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
  const onError = (e: Error) => fail(e);
  const onDrain = () => {
    stall.touch();
    waiting?.resolve();
    waiting = undefined;
  };
  const onClose = () => fail(new Error('ssh exited while the stream was being sent'));
  sink.on('error', onError);
  sink.on('drain', onDrain);
  child.once('exit', onClose);
  const put = (b: Buffer): boolean => sink.write(b);
  stall.start();
  let error: unknown;
  try {
    await exportPaths(store, paths, (chunk) => {
      if (broken) throw broken;
      bytes += chunk.length;
      if (Date.now() - lastReport > 3000) {
        lastReport = Date.now();
        report(false);
      }
      if (put(chunk)) {
        stall.touch();
        return;
      }
      return new Promise<void>((resolve, reject) => {
        waiting = { resolve, reject };
      });
    });
    sink.end();
  } catch (e) {
    error = e;
    if (e === broken) {
      sink.destroy();
      child.kill('SIGKILL');
    } else {
      // This side refused to go on (a path that no longer matches its hash): the remote
      // import gets a stream cut short, refuses it and removes its scratch copy, and is given
      // the time to, so nothing of the copy is left there when the hook reports the failure.
      sink.end();
      if (child.exitCode === null && child.signalCode === null) {
        const kill = setTimeout(() => child.kill('SIGKILL'), ctx.settings.stallTimeout * 1000);
        await new Promise((resolve) => child.once('exit', resolve));
        clearTimeout(kill);
      }
    }
  } finally {
    stall.stop();
    sink.off('drain', onDrain);
    child.off('exit', onClose);
  }
  if (Date.now() - started > 3000 && !error) report(true);
  return { bytes, total, ms: Date.now() - started, stalled: stall.stalled, error: error === broken && broken ? undefined : error };
}

/**
 * Sends `paths` (valid here, missing there) as one export stream into the remote's import
 * (the command-line engines). A copy that stops moving for the stall limit is killed.
 */
export async function upload(ctx: RemoteContext, m: Machine, store: Store, paths: readonly string[]): Promise<UploadResult> {
  const engine = engineFor(m);
  const proc = startSsh(ctx.stateDir, m, ctx.settings, engine.importCommand(), ['pipe', 'ignore', 'pipe']);
  let stderr = '';
  proc.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 65536) stderr += d;
  });
  const p = await pumpExport(ctx, m, store, paths, proc.child);
  const r = await proc.done;
  const secs = Math.round(ctx.settings.stallTimeout);
  if (p.stalled) throw new RemoteError(`copying ${paths.length} paths to it stalled: nothing moved for ${secs}s (after ${mib(p.bytes)} of ${mib(p.total)})`, true);
  if (r.code === SSH_FAILED) throw new RemoteError(`the connection dropped while copying ${paths.length} paths to it (after ${mib(p.bytes)} of ${mib(p.total)}): ${sshFailure(r)}`, true);
  if (p.error) throw p.error;
  if (r.code !== 0) {
    throw new RemoteError(`copying ${paths.length} paths to it failed: the remote import exited with status ${r.code ?? r.signal}: ${lastLine(stderr) || 'no message'}`, false);
  }
  return { paths: paths.length, bytes: p.bytes, ms: p.ms };
}

/**
 * A view of a store whose commits are vetted first: `vet` names what is wrong with an
 * import's paths (or returns undefined), and a refused batch is removed before anything
 * registers. It shares the base's DB connection: a second one costs a DB open (~10 ms of
 * CPU) in every hook and every remote session.
 */
export class GuardedStore extends Store {
  constructor(
    private readonly base: Store,
    private readonly vet: (infos: readonly ValidPathInfo[]) => Error | undefined,
  ) {
    super({ storeDir: base.storeDir, stateDir: base.stateDir });
  }
  override get db(): StoreDb {
    return this.base.db;
  }
  override close(): void {}
  override async commitPaths(items: readonly { tmp: string; info: ValidPathInfo }[], opts?: Parameters<Store['commitPaths']>[1]): Promise<string[]> {
    const refused = this.vet(items.map((i) => i.info));
    if (refused) {
      for (const i of items) removeTree(i.tmp);
      throw refused;
    }
    // The import's locks (taken while it read the stream) go along: without them the
    // commit would wait for locks this very process holds.
    return super.commitPaths(items, opts);
  }
}

/** Admits only the expected paths: a remote that slips any other path into its stream is refused. */
export function expectingStore(base: Store, expected: ReadonlySet<string>, what: string): GuardedStore {
  return new GuardedStore(base, (infos) => {
    const stranger = infos.find((i) => !expected.has(i.path));
    return stranger && new RemoteError(`${what} holds '${stranger.path}', which is not an output of this build; nothing was registered`, false);
  });
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
  const logOut = logSink(logFd);
  proc.child.stderr!.on('data', (c: Buffer) => logOut.write(log ? log.push(c) : c));
  // stdin stays open and silent: its end of file is what tells the remote to stop.
  const stdin = proc.child.stdin!;
  stdin.on('error', () => {});
  const stdout = proc.child.stdout as Readable;
  const stall = new StallWatch(ctx.settings.stallTimeout * 1000, () => proc.child.kill('SIGKILL'));
  let bytes = 0;
  let first = true;
  let streamEnded = false;
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
    streamEnded = true;
  }
  const what = `the output stream from ${m.uri}`;
  const guard = expectingStore(store, new Set(outputs), what);
  // An import that refuses the stream midway reads no more of it: the remote command is
  // stopped at once, or ssh would wait on the unread output until the stall timeout, and the
  // error would be a stall instead of what is wrong with the stream. (One that ended early,
  // a failed build's empty stream, say, is judged by how the remote command ended.)
  let refusedMidway = false;
  const imported = importPaths(guard, tracked(), { what }).then(
    (paths) => ({ ok: true as const, paths }),
    (error: unknown) => {
      if (!streamEnded && proc.child.exitCode === null && proc.child.signalCode === null) {
        refusedMidway = true;
        proc.child.kill('SIGKILL');
      }
      return { ok: false as const, error };
    },
  );
  const r = await proc.done;
  stall.stop();
  const imp = await imported;
  guard.close();
  stdin.destroy();
  if (!imp.ok && refusedMidway) throw importFailure(imp.error, what);
  if (stall.stalled) throw new RemoteError(`copying the outputs back stalled: nothing moved for ${Math.round(ctx.settings.stallTimeout)}s (after ${mib(bytes)})`, true);
  if (r.code === SSH_FAILED) throw new RemoteError(`the connection dropped ${first ? 'during the build' : 'while copying the outputs back'}: ${sshFailure(r)}`, true);
  if (r.code !== null && r.code >= 100 && r.code <= 104) return { kind: 'failed', status: r.code };
  if (r.code === REMOTE_EXIT.buildToolFailed) throw new RemoteError(`${engine.name === 'nix' ? 'nix-store' : 'drover-build'} there failed without it being a build failure (see the build log)`, false);
  if (r.code === REMOTE_EXIT.exportFailed) throw new RemoteError(`the build succeeded but exporting its outputs there failed (see the build log)`, false);
  if (r.code === REMOTE_EXIT.toolMissing) throw new RemoteError(`a remote tool is missing (see the build log)`, false);
  if (r.code !== 0) throw new RemoteError(`the remote command ended with ${r.signal ? `signal ${r.signal}` : `status ${r.code}`}`, false);
  if (!imp.ok) throw importFailure(imp.error, what);
  const missing = outputs.filter((o) => !store.db.isValid(o));
  if (missing.length > 0) throw new RemoteError(`${what}: the stream lacks ${missing.map((p) => `'${p}'`).join(', ')}`, false);
  return { kind: 'built', bytes };
}

/** A refused output stream as the hook reports it: nothing of it was registered. */
function importFailure(error: unknown, what: string): RemoteError {
  if (error instanceof RemoteError) return error;
  const msg = (error as Error).message;
  return new RemoteError(`${msg.startsWith(what) ? msg : `${what}: ${msg}`}; nothing was registered`, false);
}

/** Where the remote build log goes: the protocol's fd 4, or stderr when run by hand. */
export function logSink(logFd: number | 'inherit'): Writable {
  const out = logFd === 'inherit' ? process.stderr : fs.createWriteStream('', { fd: logFd, autoClose: false });
  out.on('error', () => {});
  return out;
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
