// The hook's tunables (timeouts, back-off, ssh options), from the environment with defaults.
import fs from 'node:fs';
import { UsageError } from '@drover/store';
import type { Machine } from './machines.js';

export interface HookSettings {
  /** Seconds for TCP connect plus SSH handshake (ssh's ConnectTimeout). */
  connectTimeout: number;
  /** Seconds without a byte moving in a copy (or an answer to a short remote command) before giving up. */
  stallTimeout: number;
  /** First back-off after a failed connection, and its cap (seconds); doubles per failure. */
  backoffBase: number;
  backoffMax: number;
  /** Seconds the shared master connection stays up after its last user (ControlPersist). */
  controlPersist: number;
  /** Keep-alive probes on the master: interval (s) and how many may go unanswered. */
  aliveInterval: number;
  aliveCount: number;
  /** Extra ssh options, split on white space (like Nix's NIX_SSHOPTS). */
  sshOpts: string[];
  /** One shared master connection per machine (default); off: a fresh connection per command. */
  shareConnection: boolean;
  /** engine=drover: use the machine's agent (needs the shared connection). */
  useAgent: boolean;
  /** Seconds an agent without sessions stays up. */
  agentIdle: number;
  /** ssh's Ciphers option for new master connections; '' leaves the choice to ssh and its config. */
  ciphers: string;
}

/**
 * AES-GCM first where the CPU has AES instructions: there it costs ssh about half the CPU
 * of its default first choice (chacha20-poly1305) per byte, and a closure copy is bound by
 * the cipher on both ends. '^' puts them at the head of ssh's own list (OpenSSH 8.2 and
 * later), so a server without them still finds a cipher in common.
 */
export const FAST_CIPHERS = '^aes128-gcm@openssh.com,aes256-gcm@openssh.com';

/** Whether this CPU has AES instructions (x86 `aes` flag, arm64 `aes` feature). */
export function cpuHasAes(cpuinfo?: string): boolean {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = fs.readFileSync('/proc/cpuinfo', 'latin1');
    } catch {
      return false;
    }
  }
  return /^(flags|Features)\s*:.*\baes\b/m.test(text);
}

/**
 * The longest timeout the hook arms as a timer (about 11 days): Node fires a longer one after
 * 1 ms instead, and a connect timeout and a stall timeout are added up for one command.
 */
export const MAX_TIMEOUT_SECONDS = 1_000_000;

/** A positive number of seconds; `max` for those that become timers here. */
function num(env: NodeJS.ProcessEnv, name: string, dflt: number, max = Infinity): number {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !(n > 0)) throw new UsageError(`environment variable ${name}='${v}' is not a positive number of seconds`);
  if (n > max) throw new UsageError(`environment variable ${name}='${v}' is more than ${max} seconds`);
  return n;
}

export function hookSettings(env: NodeJS.ProcessEnv = process.env): HookSettings {
  let backoffBase = 10;
  let backoffMax = 600;
  const b = env.DROVER_HOOK_SSH_BACKOFF;
  if (b) {
    const m = /^(\d+(?:\.\d+)?)(?::(\d+(?:\.\d+)?))?$/.exec(b);
    if (!m || !(Number(m[1]) > 0)) throw new UsageError(`environment variable DROVER_HOOK_SSH_BACKOFF='${b}' is not BASE[:MAX] in seconds`);
    backoffBase = Number(m[1]);
    backoffMax = m[2] !== undefined ? Number(m[2]) : Math.max(backoffMax, backoffBase);
    if (backoffMax < backoffBase) throw new UsageError(`environment variable DROVER_HOOK_SSH_BACKOFF='${b}': MAX is below BASE`);
  }
  return {
    connectTimeout: num(env, 'DROVER_HOOK_SSH_CONNECT_TIMEOUT', 10, MAX_TIMEOUT_SECONDS),
    stallTimeout: num(env, 'DROVER_HOOK_SSH_STALL_TIMEOUT', 60, MAX_TIMEOUT_SECONDS),
    backoffBase,
    backoffMax,
    controlPersist: num(env, 'DROVER_HOOK_SSH_PERSIST', 600),
    aliveInterval: num(env, 'DROVER_HOOK_SSH_ALIVE_INTERVAL', 5),
    aliveCount: Math.max(1, Math.round(num(env, 'DROVER_HOOK_SSH_ALIVE_COUNT', 3))),
    sshOpts: (env.DROVER_SSHOPTS ?? '').split(/\s+/).filter((s) => s !== ''),
    shareConnection: env.DROVER_HOOK_SSH_SHARE !== '0',
    useAgent: env.DROVER_HOOK_SSH_AGENT !== '0',
    agentIdle: num(env, 'DROVER_HOOK_SSH_AGENT_IDLE', 600, MAX_TIMEOUT_SECONDS),
    ciphers: ciphersSetting(env.DROVER_HOOK_SSH_CIPHERS),
  };
}

function ciphersSetting(v: string | undefined): string {
  if (v === undefined) return cpuHasAes() ? FAST_CIPHERS : '';
  if (!/^[-+^]?[A-Za-z0-9@.,*-]*$/.test(v)) throw new UsageError(`environment variable DROVER_HOOK_SSH_CIPHERS='${v}' is not a cipher list for ssh's Ciphers option`);
  return v;
}

/** The settings with a machine's own `?connect-timeout=` / `?stall-timeout=` applied. */
export function forMachine(s: HookSettings, m: Machine): HookSettings {
  return { ...s, connectTimeout: m.connectTimeout ?? s.connectTimeout, stallTimeout: m.stallTimeout ?? s.stallTimeout };
}
