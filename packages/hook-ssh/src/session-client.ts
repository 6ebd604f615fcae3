// The hook's side of a remote build session (session-protocol.ts), over the agent's socket or a `serve` over ssh.
import type net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { exportPaths, importPaths, type Store } from '@drover/store';
import type { Machine } from './machines.js';
import { engineFor } from './remote-engine.js';
import { startSsh, type SshProcess } from './ssh.js';
import { FrameReader, FrameWriter, SessionProtocolError, parseHello, parseMissing, type Hello, type SessionHeader } from './session-protocol.js';
import { connectSocket, linkAgent, localAgentSocket } from './agent-link.js';
import { expectingStore, RemoteError, SSH_FAILED, StallWatch, logSink, mib, sshFailure, type BuildOutcome, type RemoteContext, type UploadResult } from './remote-ops.js';

/** A byte stream each way to the remote end, and how to end it and learn why it ended. */
export interface Transport {
  readable: Readable;
  writable: Writable;
  /** Ends the session at once (an error on our side). */
  kill(): void;
  /** Ends our side after a complete session and waits for the remote to go. */
  finish(): Promise<void>;
  /** Once the session is over: a message when the link itself broke (so the machine backs off). */
  broken(): Promise<string | undefined>;
  /** What the remote said outside the session, if anything (a tool that is missing). */
  detail?(): string;
  /** Once the session is over: how the remote command ended when that was not plainly (`status 3`). */
  exitStatus?(): Promise<string | undefined>;
  what: string;
}

export function sshTransport(ctx: RemoteContext, m: Machine): Transport {
  const p: SshProcess = startSsh(ctx.stateDir, m, ctx.settings, engineFor(m).serveCommand!(), ['pipe', 'pipe', 'pipe']);
  // serve prints nothing on stderr but failures to start (a missing tool): show them.
  let stderr = '';
  p.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  return {
    readable: p.child.stdout!,
    writable: p.child.stdin!,
    kill: () => p.child.kill('SIGKILL'),
    finish: async () => {
      p.child.stdin!.end();
      await p.done;
    },
    broken: async () => {
      const r = await p.done;
      return r.code === SSH_FAILED ? sshFailure(r) : undefined;
    },
    detail: () => stderr.trim().split('\n').pop() ?? '',
    exitStatus: async () => {
      const r = await p.done;
      return r.signal ? `signal ${r.signal}` : r.code ? `status ${r.code}` : undefined;
    },
    what: `${m.uri} (drover-hook-ssh serve)`,
  };
}

export function socketTransport(m: Machine, sock: net.Socket): Transport {
  let killed = false;
  let closedByRemote = false;
  sock.once('end', () => {
    if (!killed) closedByRemote = true;
  });
  sock.once('close', () => {
    if (!killed) closedByRemote = true;
  });
  sock.on('error', () => {});
  return {
    readable: sock,
    writable: sock,
    kill: () => {
      killed = true;
      sock.destroy();
    },
    finish: async () => {
      killed = true;
      sock.destroy();
    },
    // The agent ends a session only after its last frame: a stream that ends before is a
    // connection (or an agent) that went away.
    broken: async () => (closedByRemote ? 'the connection to the drover agent closed (the link or the agent went away)' : undefined),
    what: `${m.uri} (drover agent)`,
  };
}

/** A session whose remote end has said hello. */
export interface OpenSession {
  t: Transport;
  reader: FrameReader;
  hello: Hello;
}

/** Why a machine's agent was passed over for a `serve` over ssh: the local end of its forward, and what was wrong there. */
export interface AgentUnusable {
  socket: string;
  why: string;
}

/**
 * Reads the hello of a fresh transport; undefined when the stream ends first. A remote that
 * says nothing for the stall limit is cut off and reported as not answering (RemoteError,
 * back-off); one that answers something other than a hello throws SessionProtocolError.
 */
async function greet(ctx: RemoteContext, t: Transport): Promise<OpenSession | undefined> {
  t.writable.on('error', () => {});
  t.readable.on('error', () => {});
  const reader = new FrameReader(t.readable, t.what);
  let stalled = false;
  const w = new StallWatch(ctx.settings.stallTimeout * 1000, () => {
    stalled = true;
    t.kill();
  });
  reader.onData = () => w.touch();
  w.start();
  try {
    // Cut off, the stream ends (cleanly or inside a frame): that is the silence, not its end.
    const f = await reader.next().catch((e: unknown) => {
      if (stalled) return undefined;
      throw e;
    });
    if (stalled) throw new RemoteError(`${t.what} did not answer within ${Math.round(ctx.settings.stallTimeout)}s (no hello)`, true);
    if (!f) return undefined;
    if (f.type !== 'H') throw new SessionProtocolError(`${t.what}: the session does not start with a hello (got a ${f.type} frame)`);
    return { t, reader, hello: parseHello(f.payload, t.what) };
  } catch (e) {
    t.kill();
    throw e;
  } finally {
    w.stop();
  }
}

/**
 * Opens a session on the machine: through its agent when it can (starting the agent and
 * the socket forward when they are not there yet), else with a `serve` over ssh. Every
 * failure is a RemoteError naming the machine; those of the remote end itself (no answer,
 * garbage, another protocol version, an end before the hello) put the machine into back-off.
 * An agent that cannot be used (garbage on its socket, no hello, not startable) is not a
 * failure of the machine, since serve may still work; but it is told once, through
 * `onAgentUnusable` (by default a warning among the hook's messages), never passed over silently:
 * every build would otherwise pay for a serve process while `check` looked fine.
 */
export async function openSession(
  ctx: RemoteContext,
  m: Machine,
  opts: { onAgentUnusable?: (u: AgentUnusable) => void } = {},
): Promise<OpenSession> {
  const s = ctx.settings;
  if (m.agent && s.useAgent && s.shareConnection) {
    const local = localAgentSocket(ctx.stateDir, m, s);
    let why = 'nothing listens there';
    for (let attempt = 0; attempt < 2; attempt++) {
      const sock = await connectSocket(local);
      if (sock) {
        const t = socketTransport(m, sock);
        try {
          const open = await greet(ctx, t);
          if (open) return open;
          why = 'it closed the connection before its hello';
        } catch (e) {
          // The message names the transport first (`URI (drover agent): …`): the warning says whose it is.
          const msg = (e as Error).message;
          why = msg.startsWith(t.what) ? msg.slice(t.what.length).replace(/^:? /, '') : msg;
        }
      } else {
        why = 'nothing listens there';
      }
      if (attempt === 0) {
        // An agent that died is started again; one that runs is left alone (linkAgent is idempotent).
        try {
          await linkAgent(ctx.stateDir, m, s, s.agentIdle);
        } catch (e) {
          why = (e as Error).message;
          break;
        }
      }
    }
    const u = { socket: local, why };
    if (opts.onAgentUnusable) opts.onAgentUnusable(u);
    else ctx.message(`warning: ${agentUnusableMessage(m, u)}; building through drover-hook-ssh serve instead`);
  }
  const t = sshTransport(ctx, m);
  let open: OpenSession | undefined;
  try {
    open = await greet(ctx, t);
  } catch (e) {
    if (!(e instanceof SessionProtocolError)) throw e;
    // What came may be the last words of a link that broke: then that is the news.
    const broken = await t.broken();
    if (broken) throw new RemoteError(`cannot reach ${m.uri}: ${broken}`, true);
    throw new RemoteError(e.message, true);
  }
  if (open) return open;
  const broken = await t.broken();
  if (broken) throw new RemoteError(`cannot reach ${m.uri}: ${broken}`, true);
  const status = await t.exitStatus?.();
  const detail = t.detail?.();
  throw new RemoteError(`${t.what} ended before its hello${status ? ` (${status})` : ''}${detail ? `: ${detail}` : ''}`, true);
}

/**
 * Why a session's remote cannot build for us, if its hello names another store dir than
 * ours (the session's drover may see another environment than the probe's shell: an agent
 * keeps the one it started with, a `remote-program` wrapper may set its own).
 */
export function helloStoreDirProblem(m: Pick<Machine, 'uri'>, hello: Pick<Hello, 'storeDir'>, storeDir: string): string | undefined {
  if (hello.storeDir === storeDir) return undefined;
  return `${m.uri} uses the store dir '${hello.storeDir}', not '${storeDir}' as this machine does (set DROVER_STORE_DIR on the remote)`;
}

/** What was wrong with a machine's agent, naming the machine and the socket. */
function agentUnusableMessage(m: Machine, u: AgentUnusable): string {
  return `the drover agent of ${m.uri} (socket '${u.socket}') is unusable: ${u.why}`;
}

/**
 * Ends a session that has said its hello and nothing more (check's look at the remote):
 * the remote takes our end of input as "goodbye"; one that does not go is cut off.
 */
export async function closeSession(ctx: RemoteContext, session: OpenSession): Promise<void> {
  const timer = setTimeout(() => session.t.kill(), Math.min(5, ctx.settings.stallTimeout) * 1000);
  try {
    await session.t.finish();
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs one remote build over an open session: store dir check, the missing inputs in
 * frames, the build with its log on fd 4, the outputs into a local import that admits
 * nothing but them.
 */
export async function runRemoteBuild(
  ctx: RemoteContext,
  m: Machine,
  store: Store,
  session: OpenSession,
  req: { drv: string; inputs: string[]; outputs: string[]; maxSilentTime: number },
  logFd: number | 'inherit',
): Promise<{ outcome: BuildOutcome; upload: UploadResult }> {
  const { t, reader, hello } = session;
  const log = logSink(logFd);
  reader.onLog = (b) => log.write(b);
  const writer = new FrameWriter(t.writable);
  let stage = 'at its start';
  let stalled: (() => string) | undefined;
  let finished = false;
  const secs = Math.round(ctx.settings.stallTimeout);
  const watch = () => {
    const w = new StallWatch(ctx.settings.stallTimeout * 1000, () => {
      stalled = () => (stage === 'while copying the outputs back' ? `copying the outputs back stalled: nothing moved for ${secs}s` : `no answer ${stage} for ${secs}s`);
      t.kill();
    });
    reader.onData = () => w.touch();
    w.start();
    return w;
  };
  const guard = expectingStore(store, new Set(req.outputs), `the output stream from ${m.uri}`);
  let up: UploadResult = { paths: 0, bytes: 0, ms: 0 };
  let w = watch();
  try {
    const wrongStoreDir = helloStoreDirProblem(m, hello, ctx.storeDir);
    if (wrongStoreDir) throw new RemoteError(wrongStoreDir, false);
    // A remote that checks NARs against our hashes spares us hashing what we send.
    const narHashes = hello.checksNarHashes;
    const header: SessionHeader = { storeDir: ctx.storeDir, drv: req.drv, outputs: req.outputs, inputs: req.inputs, maxSilentTime: req.maxSilentTime, narHashes };
    await writer.message({ ...header });
    stage = 'while asking which inputs it lacks';
    const answer = await reader.expect('M', stage);
    // The remote's own refusal (its store, its DB) is news about this build, not a broken
    // protocol: no back-off, as with the refusals of an import or a build below.
    if (typeof answer.error === 'string') throw new RemoteError(`${t.what}: ${answer.error}`, false);
    const missing = parseMissing(answer, new Set(req.inputs), t.what);
    w.stop();
    if (missing.length > 0) {
      const copying = `copying ${missing.length} path${missing.length === 1 ? '' : 's'} to it`;
      stage = `while ${copying}`;
      const started = Date.now();
      let total = 0;
      const hashes: Record<string, string> = {};
      for (const p of missing) {
        const info = store.db.queryPathInfo(p);
        if (!info) throw new RemoteError(`'${p}' is not valid here: it cannot be copied`, false);
        total += info.narSize;
        hashes[p] = info.narHash.toString('base32', true);
      }
      if (total >= 1048576) ctx.message(`${copying.replace('to it', `(${mib(total)}) to ${m.uri}`)}`);
      if (narHashes) await writer.message({ narHashes: hashes });
      let last = Date.now();
      const send = new StallWatch(ctx.settings.stallTimeout * 1000, () => {
        stalled = () => `${copying} stalled: nothing moved for ${secs}s (after ${mib(writer.dataBytes)} of ${mib(total)})`;
        t.kill();
      });
      t.writable.on('drain', () => send.touch());
      send.start();
      try {
        await exportPaths(
          store,
          missing,
          (c) => {
          if (Date.now() - last > 3000) {
            last = Date.now();
            const secs = (Date.now() - started) / 1000;
            ctx.message(`copying ${mib(writer.dataBytes)} of ${mib(total)} to ${m.uri} at ${mib(writer.dataBytes / secs)}/s`);
          }
          const r = writer.sendData(c);
          if (!r) send.touch();
          return r;
          },
          { verify: !narHashes },
        );
        await writer.endData();
      } finally {
        send.stop();
        stage = `while ${copying} (after ${mib(writer.dataBytes)} of ${mib(total)})`;
      }
      w = watch();
      const done = await reader.expect('M', stage);
      w.stop();
      if (typeof done.error === 'string') throw new RemoteError(`${copying} failed: ${done.error}`, false);
      if (done.imported !== missing.length) throw new SessionProtocolError(`${t.what}: expected {imported: ${missing.length}}, got ${JSON.stringify(done).slice(0, 200)}`);
      up = { paths: missing.length, bytes: writer.dataBytes, ms: Date.now() - started };
    }
    // The build may be silent for as long as it likes: max-silent-time is the scheduler's.
    stage = 'during the build';
    const st = await reader.expect('M', stage);
    if (typeof st.error === 'string') throw new RemoteError(`the remote build failed: ${st.error}`, false);
    if (typeof st.status !== 'number') throw new SessionProtocolError(`${t.what}: expected {status}, got ${JSON.stringify(st).slice(0, 200)}`);
    if (st.status >= 100 && st.status <= 104) {
      finished = true;
      return { outcome: { kind: 'failed', status: st.status }, upload: up };
    }
    if (st.status !== 0) throw new RemoteError(`drover there failed without it being a build failure (status ${st.status}; see the build log)`, false);
    stage = 'while copying the outputs back';
    let back = 0;
    const counted = async function* () {
      for await (const c of reader.data()) {
        back += c.length;
        yield c;
      }
    };
    w = watch();
    await importPaths(guard, counted(), { what: `the output stream from ${m.uri}` });
    w.stop();
    const absent = req.outputs.filter((o) => !store.db.isValid(o));
    if (absent.length > 0) throw new RemoteError(`the output stream from ${m.uri} lacks ${absent.map((p) => `'${p}'`).join(', ')}`, false);
    finished = true;
    return { outcome: { kind: 'built', bytes: back }, upload: up };
  } catch (e) {
    w.stop();
    const broken = await settle(t);
    if (stalled) throw new RemoteError(stalled(), true);
    if (e instanceof RemoteError && (e.backOff || !broken)) throw e;
    if (broken) throw new RemoteError(`the connection dropped ${stage}: ${broken}`, true);
    const detail = t.detail?.();
    const msg = (e as Error).message + (detail ? ` (the remote said: ${detail})` : '');
    // A remote that breaks the protocol at any stage (garbage, a message that is not JSON or
    // not the one due, a frame out of place, an end mid-session) is as broken as one that does
    // so instead of its hello: the next builds should not meet it again at once, so back off.
    // What it refuses or fails in its own words (an {error}, a build's status) stays without.
    const protocol = e instanceof SessionProtocolError;
    throw new RemoteError(`${msg}${stage === 'while copying the outputs back' && !/nothing was registered/.test(msg) ? '; nothing was registered' : ''}`, protocol);
  } finally {
    guard.close();
    // The remote has sent everything: ours to end.
    if (finished) await t.finish();
  }
}

/**
 * After a failure: whether the link broke by itself. A stream that ended under us is given a
 * moment to tell (ssh's exit status); one still open is ours to cut.
 */
async function settle(t: Transport): Promise<string | undefined> {
  if (!t.readable.readableEnded && !t.readable.destroyed) t.kill();
  const timer = setTimeout(() => t.kill(), 2000);
  try {
    return await t.broken();
  } finally {
    clearTimeout(timer);
  }
}
