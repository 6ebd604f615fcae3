// The hook's way to a machine's agent: the agent's Unix socket forwarded through the shared ssh connection.
import net from 'node:net';
import { spawn } from 'node:child_process';
import type { Machine } from './machines.js';
import type { HookSettings } from './settings.js';
import { controlPath, runSsh, sshArgs } from './ssh.js';
import { wrapRemote } from './remote-engine.js';

/** The local end of the forward: beside the control socket, so it dies with its master's directory. */
export function localAgentSocket(stateDir: string, m: Machine, s: HookSettings): string {
  return `${controlPath(stateDir, m, s)}.agent`;
}

/** Connects to a Unix socket; undefined when nothing listens there. */
export function connectSocket(file: string): Promise<net.Socket | undefined> {
  return new Promise((resolve) => {
    const c = net.connect(file);
    c.once('connect', () => {
      c.removeAllListeners('error');
      resolve(c);
    });
    c.once('error', () => resolve(undefined));
  });
}

/**
 * Starts the machine's agent if it does not run (the remote prints its socket path) and
 * forwards our local socket to it over the master connection (`ssh -O forward`). Both are
 * idempotent: hooks racing here end up with the one agent and the one forward.
 */
export async function linkAgent(stateDir: string, m: Machine, s: HookSettings, idleSeconds: number): Promise<string> {
  const timeoutMs = (s.connectTimeout + s.stallTimeout) * 1000;
  const start = await runSsh(stateDir, m, s, wrapRemote(m, `exec drover-hook-ssh agent --start --idle ${Math.round(idleSeconds)}`), { timeoutMs });
  const remote = start.stdout.trim().split('\n').pop() ?? '';
  if (start.code !== 0 || !remote.startsWith('/')) {
    throw new Error(`could not start the drover agent on ${m.uri}: ${start.sshError || start.stderr.trim().split('\n').pop() || `status ${start.code}`}`);
  }
  const local = localAgentSocket(stateDir, m, s);
  const args = sshArgs(stateDir, m, s, { forward: true });
  const fwd = spawn('ssh', ['-O', 'forward', '-o', 'StreamLocalBindUnlink=yes', '-L', `${local}:${remote}`, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  fwd.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const code = await new Promise<number | null>((r) => fwd.once('close', r));
  // An existing forward of the same socket makes ssh complain; the socket is what counts.
  if (code !== 0 && !(await connectSocket(local).then((c) => (c?.destroy(), c !== undefined)))) {
    throw new Error(`could not forward to the drover agent on ${m.uri}: ${err.trim() || `ssh -O forward exited with ${code}`}`);
  }
  return local;
}
