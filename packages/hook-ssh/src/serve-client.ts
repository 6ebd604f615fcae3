// The hook's side of a `drover-hook-ssh serve` session: one ssh command per remote build.
import type { Readable } from 'node:stream';
import type { Store } from '@drover/store';
import type { Machine } from './machines.js';
import { engineFor } from './remote-engine.js';
import { startSsh } from './ssh.js';
import { SERVE_VERSION, ServeProtocolError, StreamReader, parseMissingReply, type ServeHeader } from './serve-protocol.js';
import {
  ExpectingStore,
  RemoteError,
  SSH_FAILED,
  StallWatch,
  logSink,
  mib,
  pumpExport,
  sshFailure,
  type BuildOutcome,
  type RemoteContext,
  type UploadResult,
} from './remote-ops.js';
import { importPaths } from '@drover/store';

/**
 * Runs the whole remote build over one session: the remote says which inputs it lacks, gets
 * them in frames, builds (log on fd 4), and streams the outputs back into a local import that
 * admits nothing but the outputs. Failures of the link put the machine into back-off.
 */
export async function serveBuild(
  ctx: RemoteContext,
  m: Machine,
  store: Store,
  req: { drv: string; inputs: string[]; outputs: string[]; maxSilentTime: number },
  logFd: number | 'inherit',
): Promise<{ outcome: BuildOutcome; upload: UploadResult }> {
  const engine = engineFor(m);
  const proc = startSsh(ctx.stateDir, m, ctx.settings, engine.serveCommand!(), ['pipe', 'pipe', 'pipe']);
  const logOut = logSink(logFd);
  proc.child.stderr!.on('data', (c: Buffer) => logOut.write(c));
  const stdin = proc.child.stdin!;
  stdin.on('error', () => {});
  const reader = new StreamReader(proc.child.stdout as Readable);
  const what = `${m.uri} (drover-hook-ssh serve)`;
  const header: ServeHeader = { v: SERVE_VERSION, storeDir: ctx.storeDir, drv: req.drv, outputs: req.outputs, inputs: req.inputs, maxSilentTime: req.maxSilentTime };
  stdin.write(JSON.stringify(header) + '\n');
  let stage = 'asking which inputs it lacks';
  let up: UploadResult = { paths: 0, bytes: 0, ms: 0 };
  let stalled = false;
  const stall = new StallWatch(ctx.settings.stallTimeout * 1000, () => {
    stalled = true;
    proc.child.kill('SIGKILL');
  });
  const guard = new ExpectingStore(store, new Set(req.outputs), `the output stream from ${m.uri}`);
  try {
    // Every wait below ends when ssh does (its stdout closes), so none can hang on a dead link.
    const reply = parseMissingReply(await reader.json(what), new Set(req.inputs), what);
    if (reply.storeDir !== ctx.storeDir) {
      throw new RemoteError(`${m.uri} uses the store dir '${reply.storeDir}', not '${ctx.storeDir}' as this machine does (set DROVER_STORE_DIR on the remote)`, false);
    }
    if (reply.missing.length > 0) {
      stage = `copying ${reply.missing.length} paths to it`;
      const p = await pumpExport(ctx, m, store, reply.missing, proc.child, { framed: true });
      if (p.stalled) throw new RemoteError(`${stage} stalled: nothing moved for ${Math.round(ctx.settings.stallTimeout)}s (after ${mib(p.bytes)} of ${mib(p.total)})`, true);
      if (p.error) throw p.error;
      stage = `${stage} (after ${mib(p.bytes)} of ${mib(p.total)})`;
      const done = await reader.json(what);
      if (typeof done.error === 'string') throw new RemoteError(`${stage} failed: ${done.error}`, false);
      if (done.imported !== reply.missing.length) throw new ServeProtocolError(`${what}: expected {imported: ${reply.missing.length}}, got ${JSON.stringify(done).slice(0, 200)}`);
      up = { paths: reply.missing.length, bytes: p.bytes, ms: p.ms };
    }
    stage = 'during the build';
    const st = await reader.json(what);
    if (typeof st.error === 'string') throw new RemoteError(`the remote build failed: ${st.error}`, false);
    if (typeof st.status !== 'number') throw new ServeProtocolError(`${what}: expected {status}, got ${JSON.stringify(st).slice(0, 200)}`);
    if (st.status >= 100 && st.status <= 104) return { outcome: { kind: 'failed', status: st.status }, upload: up };
    if (st.status !== 0) throw new RemoteError(`drover there failed without it being a build failure (status ${st.status}; see the build log)`, false);
    stage = 'while copying the outputs back';
    reader.onData = () => stall.touch();
    stall.start();
    await importPaths(guard, reader.rest(), { what: `the output stream from ${m.uri}` });
    stall.stop();
    const missing = req.outputs.filter((o) => !store.db.isValid(o));
    if (missing.length > 0) throw new RemoteError(`the output stream from ${m.uri} lacks ${missing.map((p) => `'${p}'`).join(', ')}`, false);
    return { outcome: { kind: 'built', bytes: reader.received }, upload: up };
  } catch (e) {
    stall.stop();
    proc.child.kill('SIGKILL');
    const r = await proc.done;
    if (stalled) throw new RemoteError(`copying the outputs back stalled: nothing moved for ${Math.round(ctx.settings.stallTimeout)}s`, true);
    if (r.code === SSH_FAILED) throw new RemoteError(`the connection dropped ${stage}: ${sshFailure(r)}`, true);
    if (e instanceof RemoteError) throw e;
    const msg = (e as Error).message;
    throw new RemoteError(`${msg}${/nothing was registered/.test(msg) ? '' : stage === 'while copying the outputs back' ? '; nothing was registered' : ''}`, false);
  } finally {
    guard.close();
    stdin.destroy();
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
    await proc.done;
  }
}
