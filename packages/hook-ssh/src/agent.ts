// `drover-hook-ssh agent`: a long-lived remote end that runs build sessions for every hook, over a Unix socket.
//
// Starting node and loading drover for every remote build costs more CPU than a trivial
// build itself. The agent pays that once: hooks reach its socket through their shared ssh
// connection (a streamlocal forward of the ControlMaster), and each connection is one
// session (session-protocol.ts). One agent per state dir, guarded by a flock; it exits after
// a while without connections. Its sessions die with their connections, like serve's.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { tryLock, type StoreConfig } from '@drover/store';
import { runSession } from './remote-session.js';

/** The agent's socket for a state dir: under it when the path fits a socket address, else in a private dir under /tmp. */
export function agentSocketPath(stateDir: string): string {
  const p = path.join(stateDir, 'hook-ssh', 'agent.sock');
  if (p.length <= 100) return p;
  const dir = path.join(os.tmpdir(), `drover-agent-${process.getuid?.() ?? 0}`);
  return path.join(dir, `${createHash('sha256').update(stateDir).digest('hex').slice(0, 16)}.sock`);
}

function lockFile(stateDir: string): string {
  return path.join(stateDir, 'hook-ssh', 'agent.lock');
}

/**
 * Makes sure an agent runs for this state dir and returns its socket: starts one (detached,
 * in its own session) when none holds the lock, then waits for its socket.
 */
export async function startAgent(config: StoreConfig, opts: { script: string; idleSeconds: number; env: NodeJS.ProcessEnv }): Promise<string> {
  const socket = agentSocketPath(config.stateDir);
  fs.mkdirSync(path.dirname(lockFile(config.stateDir)), { recursive: true });
  const probe = tryLock(lockFile(config.stateDir));
  if (probe) {
    probe.release();
    fs.mkdirSync(path.dirname(socket), { recursive: true, mode: 0o700 });
    const log = fs.openSync(path.join(config.stateDir, 'hook-ssh', 'agent.log'), 'a');
    const child = spawn(process.execPath, [opts.script, 'agent', '--socket', socket, '--idle', String(opts.idleSeconds)], {
      detached: true,
      stdio: ['ignore', log, log],
      env: opts.env,
      cwd: '/',
    });
    child.unref();
    fs.closeSync(log);
  }
  for (let waited = 0; waited < 15000; waited += 20) {
    if (await connectable(socket)) return socket;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`the agent did not come up on '${socket}' (see ${path.join(config.stateDir, 'hook-ssh', 'agent.log')})`);
}

function connectable(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(socket);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** Runs the agent until it has been idle for `idleSeconds` (or is told to stop); 0 when another agent already runs. */
export async function runAgent(opts: { socket: string; idleSeconds: number; config: StoreConfig; env: NodeJS.ProcessEnv; version: string }): Promise<number> {
  const held = tryLock(lockFile(opts.config.stateDir));
  if (!held) return 0;
  fs.rmSync(opts.socket, { force: true });
  const stops = new Set<() => void>();
  let open = 0;
  let idleTimer: NodeJS.Timeout | undefined;
  const server = net.createServer((conn) => {
    open++;
    clearTimeout(idleTimer);
    conn.on('error', () => {});
    void runSession({
      input: conn,
      output: conn,
      config: opts.config,
      env: opts.env,
      version: opts.version,
      onStop: (stop) => {
        stops.add(stop);
        return () => stops.delete(stop);
      },
    })
      .catch((e: unknown) => process.stderr.write(`drover-hook-ssh agent: session failed: ${(e as Error).message}\n`))
      .finally(() => {
        conn.end();
        open--;
        armIdle();
      });
  });
  const done = new Promise<void>((resolve) => server.once('close', () => resolve()));
  const shutdown = () => {
    server.close();
    for (const s of stops) s();
  };
  const armIdle = () => {
    clearTimeout(idleTimer);
    if (open === 0) idleTimer = setTimeout(shutdown, opts.idleSeconds * 1000);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGHUP', shutdown);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // Only the owner may talk to the agent: it builds and imports into their store.
    const mask = process.umask(0o077);
    server.listen(opts.socket, () => {
      process.umask(mask);
      resolve();
    });
  });
  armIdle();
  await done;
  fs.rmSync(opts.socket, { force: true });
  held.release();
  return 0;
}
