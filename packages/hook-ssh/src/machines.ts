// The machines file: Nix's modern 8-field layout (and the 0.16 4-field one), parsed into Machines.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { UsageError } from '@drover/store';
import { MAX_TIMEOUT_SECONDS } from './settings.js';

/**
 * What runs on the remote: `drover` (one `drover-hook-ssh serve` per build), `drover-cli`
 * (drover-store import, drover-build, drover-store export, one process per step), or real
 * Nix (`nix-store --import`, `-r`, `--export`).
 */
export type Engine = 'drover' | 'drover-cli' | 'nix';

export interface Machine {
  /** The URI as written, without its `?options`: what `@ build-remote` and messages print. */
  uri: string;
  /**
   * The URI in one spelling (`ssh://`, options sorted), options included: what tells two lines
   * of the same host apart (and what `status` shows when `uri` alone does not).
   */
  canonicalUri: string;
  /** `user@host` (or `host`) as ssh takes it. */
  sshHost: string;
  host: string;
  user?: string;
  port?: number;
  /** Empty: the local system (THIS_SYSTEM), as Nix reads an omitted field. */
  systems: string[];
  sshKey?: string;
  maxJobs: number;
  speedFactor: number;
  supportedFeatures: string[];
  mandatoryFeatures: string[];
  /** The pinned host key as a known_hosts key (`TYPE BASE64`), from HOST_KEY_BASE64. */
  hostKey?: string;
  /** Directories put first on the remote PATH (`?remote-program=DIR[:DIR]`). */
  remotePath: string[];
  engine: Engine;
  /** engine=drover: run sessions through a long-lived agent on the machine (`?agent=0`: a serve per build). */
  agent: boolean;
  /** Per-machine overrides of the connection timeouts (seconds), `?connect-timeout=`, `?stall-timeout=`. */
  connectTimeout?: number;
  stallTimeout?: number;
  /**
   * Stable, file-name-safe id for slots, health, the pinned known_hosts and the probe record:
   * one per URI with its options, so two lines for one host (say `?engine=nix` and the
   * default engine) are two machines, each with its own MAX_JOBS and failure memory.
   */
  id: string;
  /** Where it was defined, for messages. */
  file: string;
  line: number;
}

/** A machines file line or field that does not parse: exit 2, naming file, line and field. */
export class MachinesFileError extends UsageError {}

export const FIELD_NAMES = [
  'URI',
  'SYSTEMS',
  'SSH_KEY',
  'MAX_JOBS',
  'SPEED_FACTOR',
  'SUPPORTED_FEATURES',
  'MANDATORY_FEATURES',
  'HOST_KEY_BASE64',
] as const;

/** `--machines` > `DROVER_MACHINES` > `$XDG_CONFIG_HOME/drover/machines`. */
export function machinesFilePath(flag?: string, env: NodeJS.ProcessEnv = process.env): { file: string; explicit: boolean } {
  // Empty is a mistake (an unset shell variable, say), not a request for the default file.
  if (flag === '') throw new MachinesFileError("--machines was given an empty file name");
  if (flag !== undefined) return { file: path.resolve(flag), explicit: true };
  if (env.DROVER_MACHINES) return { file: path.resolve(env.DROVER_MACHINES), explicit: true };
  const xdg = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(os.homedir(), '.config');
  return { file: path.join(xdg, 'drover', 'machines'), explicit: false };
}

/**
 * Reads the machines file. A missing default file means no machines (every request is
 * declined; `missing` says so, for status and check); a missing file someone named is an error.
 */
export function loadMachines(flag?: string, env: NodeJS.ProcessEnv = process.env): { file: string; machines: Machine[]; missing: boolean } {
  const { file, explicit } = machinesFilePath(flag, env);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT' && !explicit) return { file, machines: [], missing: true };
    throw new MachinesFileError(`cannot read the machines file '${file}': ${err.message}`);
  }
  return { file, machines: parseMachines(text, file), missing: false };
}

/**
 * One host may have several lines, as Nix allows (one with `?engine=nix`, one with drover;
 * one per `remote-program`): each URI with its options is a machine of its own. The very same
 * URI twice is refused: its lines would share one set of slots, with a MAX_JOBS each, and
 * neither "the first line's limit" nor "the sum" is what such a file says. One line lists
 * all of a machine's systems and features.
 */
export function parseMachines(text: string, file = '<machines>'): Machine[] {
  const machines: Machine[] = [];
  const seen = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = parseMachineLine(lines[i]!, file, i + 1);
    if (!m) continue;
    const prev = seen.get(m.id);
    if (prev !== undefined) {
      throw new MachinesFileError(
        `machines file '${file}', line ${i + 1}, field 1 (${FIELD_NAMES[0]}): '${m.canonicalUri}' is already the URI of line ${prev}; ` +
          `list all of a machine's systems and features on one line (a second line for the same host needs other URI options, e.g. another engine)`,
      );
    }
    seen.set(m.id, i + 1);
    machines.push(m);
  }
  // One account on a host runs one agent, started by whichever drover reached it first; lines
  // for that account with other remote programs would have their sessions served by it. They
  // get a `serve` of their own program per build instead.
  const programs = new Map<string, Set<string>>();
  const account = (m: Machine) => JSON.stringify([m.sshHost, m.port ?? 22]);
  for (const m of machines) if (m.engine === 'drover') programs.set(account(m), (programs.get(account(m)) ?? new Set()).add(m.remotePath.join(':')));
  for (const m of machines) if (m.engine === 'drover' && programs.get(account(m))!.size > 1) m.agent = false;
  return machines;
}

/** One line; undefined for blank and comment lines. */
export function parseMachineLine(raw: string, file: string, line: number): Machine | undefined {
  const text = raw.replace(/#.*$/, '').trim();
  if (text === '') return undefined;
  const where = `machines file '${file}', line ${line}`;
  if (/[\0]/.test(text)) throw new MachinesFileError(`${where}: contains a NUL byte`);
  const fields = text.split(/\s+/);
  if (fields.length > FIELD_NAMES.length) {
    throw new MachinesFileError(`${where}: ${fields.length} fields, at most ${FIELD_NAMES.length} (${FIELD_NAMES.join(' ')}); extra: '${fields.slice(FIELD_NAMES.length).join(' ')}'`);
  }
  const field = (i: number): string | undefined => {
    const v = fields[i];
    return v === undefined || v === '-' ? undefined : v;
  };
  // nix.conf's `builders = a … ; b …` separates machines by ';', which a machines file does not:
  // a value copied from there would otherwise be refused for a reason that hides the cause.
  const bad = (i: number, msg: string): MachinesFileError =>
    new MachinesFileError(
      `${where}, field ${i + 1} (${FIELD_NAMES[i]}): ${msg}` +
        (fields[i]?.includes(';') ? `; a machines file has one machine a line (';' separates machines only in nix.conf's builders setting)` : ''),
    );

  const uriField = fields[0]!;
  if (uriField === '-') throw bad(0, "the URI cannot be '-'");
  const { sshKeyOption, ...uri } = parseUri(uriField, (msg) => bad(0, msg));

  const systems = listField(field(1), (s) => {
    if (!/^[A-Za-z0-9_.+-]+$/.test(s)) throw bad(1, `system '${s}' has characters other than letters, digits, '_', '.', '+', '-'`);
  });
  const keyField = field(2);
  if (keyField !== undefined && !path.isAbsolute(keyField)) throw bad(2, `SSH key '${keyField}' is not an absolute path`);
  if (keyField !== undefined && sshKeyOption !== undefined && keyField !== sshKeyOption) {
    throw bad(2, `SSH key '${keyField}' differs from the URI's ssh-key option '${sshKeyOption}'`);
  }
  const sshKey = keyField ?? sshKeyOption;

  let maxJobs = 1;
  const mj = field(3);
  if (mj !== undefined) {
    if (!/^\d+$/.test(mj) || Number(mj) > 1024) throw bad(3, `'${mj}' is not a whole number of jobs from 0 to 1024`);
    maxJobs = Number(mj);
  }
  let speedFactor = 1;
  const sf = field(4);
  if (sf !== undefined) {
    if (!/^(\d+(\.\d*)?|\.\d+)$/.test(sf) || !(Number(sf) > 0) || !Number.isFinite(Number(sf))) {
      throw bad(4, `'${sf}' is not a positive number`);
    }
    speedFactor = Number(sf);
  }
  const featureCheck = (i: number) => (f: string) => {
    if (!/^[A-Za-z0-9_.+-]+$/.test(f)) throw bad(i, `feature '${f}' has characters other than letters, digits, '_', '.', '+', '-'`);
  };
  const supportedFeatures = listField(field(5), featureCheck(5));
  const mandatoryFeatures = listField(field(6), featureCheck(6));
  const hk = field(7);
  const hostKey = hk === undefined ? undefined : decodeHostKey(hk, (msg) => bad(7, msg));

  return {
    ...uri,
    systems,
    sshKey,
    maxJobs,
    speedFactor,
    supportedFeatures,
    mandatoryFeatures,
    hostKey,
    file,
    line,
  };
}

function listField(v: string | undefined, check: (item: string) => void): string[] {
  if (v === undefined) return [];
  const items = v.split(',').filter((s) => s !== '');
  for (const s of items) check(s);
  return [...new Set(items)];
}

type UriPart = Pick<Machine, 'uri' | 'canonicalUri' | 'sshHost' | 'host' | 'user' | 'port' | 'remotePath' | 'engine' | 'agent' | 'connectTimeout' | 'stallTimeout' | 'id'>;

const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])$/;
const USER_RE = /^[A-Za-z0-9._][A-Za-z0-9._-]*$/;

/**
 * `ssh://[user@]host[:port][?opts]`, `ssh-ng://…` (read as ssh), or a bare `[user@]host`.
 * Options: `remote-program=DIR[:DIR]`, `engine=drover|drover-cli|nix`, `agent=0|1`, `ssh-key=FILE` (Nix's spelling),
 * `connect-timeout=S`, `stall-timeout=S`. Unknown options are errors, so typos do not
 * silently fall back to defaults.
 */
export function parseUri(s: string, bad: (msg: string) => Error): UriPart & { sshKeyOption?: string } {
  let rest = s;
  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  let scheme: string | undefined;
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/.exec(rest);
  if (m) {
    scheme = m[1]!;
    rest = m[2]!;
    if (scheme !== 'ssh' && scheme !== 'ssh-ng') throw bad(`URI scheme '${scheme}://' is not supported (use ssh://host or a bare host)`);
    if (rest.endsWith('/')) rest = rest.slice(0, -1);
  } else if (rest.includes('/')) {
    throw bad(`'${s}' is neither ssh://[user@]host[:port] nor a bare [user@]host`);
  }
  let user: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
    if (!USER_RE.test(user)) throw bad(`user name '${user}' in '${s}' is not valid`);
  }
  let port: number | undefined;
  let host = rest;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw bad(`'[' without ']' in '${s}'`);
    host = rest.slice(0, close + 1);
    const tail = rest.slice(close + 1);
    if (tail !== '') {
      if (!tail.startsWith(':')) throw bad(`unexpected '${tail}' after the host in '${s}'`);
      portText = tail.slice(1);
    }
  } else {
    const colon = rest.indexOf(':');
    if (colon >= 0) {
      host = rest.slice(0, colon);
      portText = rest.slice(colon + 1);
    }
  }
  if (portText !== undefined) {
    if (!scheme) throw bad(`a port needs the ssh:// form: ssh://${user ? user + '@' : ''}${host}:${portText}`);
    const p = Number(portText);
    if (!/^\d+$/.test(portText) || p < 1 || p > 65535) throw bad(`port '${portText}' in '${s}' is not 1 to 65535`);
    port = p;
  }
  if (!host || !HOST_RE.test(host) || host.startsWith('-')) throw bad(`host name '${host}' in '${s}' is not valid`);
  const opts = new Map<string, string>();
  for (const kv of query === '' ? [] : query.split('&')) {
    const eq = kv.indexOf('=');
    const k = eq < 0 ? kv : kv.slice(0, eq);
    let v: string;
    try {
      v = eq < 0 ? '' : decodeURIComponent(kv.slice(eq + 1));
    } catch {
      throw bad(`option '${kv}' in '${s}' is not URI-encoded properly`);
    }
    if (opts.has(k)) throw bad(`option '${k}' is given twice in '${s}'`);
    opts.set(k, v);
  }
  let remotePath: string[] = [];
  let engine: Engine = 'drover';
  let agent = true;
  let connectTimeout: number | undefined;
  let stallTimeout: number | undefined;
  let sshKeyOption: string | undefined;
  for (const [k, v] of opts) {
    switch (k) {
      case 'remote-program':
        remotePath = v.split(':').filter((d) => d !== '');
        for (const d of remotePath) {
          if (!path.isAbsolute(d)) throw bad(`remote-program '${d}' is not an absolute directory`);
          if (/[\n'\\]/.test(d)) throw bad(`remote-program '${d}' contains a quote, backslash or newline`);
        }
        if (remotePath.length === 0) throw bad(`remote-program in '${s}' is empty`);
        break;
      case 'engine':
        if (v !== 'drover' && v !== 'drover-cli' && v !== 'nix') throw bad(`engine '${v}' is not 'drover', 'drover-cli' or 'nix'`);
        engine = v;
        break;
      case 'connect-timeout':
      case 'stall-timeout': {
        const n = Number(v);
        if (!/^\d+(\.\d+)?$/.test(v) || !(n > 0)) throw bad(`${k} '${v}' is not a positive number of seconds`);
        if (n > MAX_TIMEOUT_SECONDS) throw bad(`${k} '${v}' is more than ${MAX_TIMEOUT_SECONDS} seconds`);
        if (k === 'connect-timeout') connectTimeout = n;
        else stallTimeout = n;
        break;
      }
      case 'agent':
        if (v !== '0' && v !== '1') throw bad(`agent '${v}' is not 0 or 1`);
        agent = v === '1';
        break;
      case 'ssh-key':
        if (!path.isAbsolute(v)) throw bad(`ssh-key '${v}' is not an absolute path`);
        sshKeyOption = v;
        break;
      default:
        throw bad(`unknown option '${k}' in '${s}' (known: remote-program, engine, agent, ssh-key, connect-timeout, stall-timeout)`);
    }
  }
  const bareHost = host.startsWith('[') ? host.slice(1, -1) : host;
  const hostPart = `${user ? user + '@' : ''}${host}${port !== undefined ? ':' + port : ''}`;
  const base = `${scheme ? 'ssh://' : ''}${hostPart}`;
  // `h` and `ssh-ng://h` are `ssh://h`; option order does not matter.
  const optionText = [...opts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
  const canonicalUri = `ssh://${hostPart}${optionText ? '?' + optionText : ''}`;
  // A URI without options keeps the id it always had (slots, failure memory survive an upgrade).
  const id = `${(user ? user + '@' : '') + bareHost}${port !== undefined ? '-' + port : ''}`.replace(/[^A-Za-z0-9@._-]/g, '_').slice(0, 60) +
    '-' + createHash('sha256').update(`${user ?? ''}@${bareHost}:${port ?? ''}${optionText ? '?' + optionText : ''}`).digest('hex').slice(0, 8);
  return {
    uri: base,
    canonicalUri,
    sshHost: `${user ? user + '@' : ''}${bareHost}`,
    host: bareHost,
    user,
    port,
    remotePath,
    engine,
    agent,
    connectTimeout,
    stallTimeout,
    sshKeyOption,
    id,
  };
}

const KEY_TYPES = /^(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)$/;

/**
 * HOST_KEY_BASE64 is the base64 of a public key line (`base64 -w0 ssh_host_ed25519_key.pub`),
 * as Nix takes it. Returns `TYPE KEY` for a known_hosts file.
 */
export function decodeHostKey(b64: string, bad: (msg: string) => Error): string {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw bad(`'${short(b64)}' is not base64`);
  const text = Buffer.from(b64, 'base64').toString('utf8').trim();
  const parts = text.split(/\s+/);
  if (parts.length < 2 || !KEY_TYPES.test(parts[0]!) || !/^[A-Za-z0-9+/]+={0,2}$/.test(parts[1]!)) {
    throw bad(`'${short(b64)}' does not decode to a public key line 'TYPE KEY [COMMENT]' (got '${short(text)}')`);
  }
  // The key blob starts with its own type name: a truncated or swapped key is caught here.
  const blob = Buffer.from(parts[1]!, 'base64');
  const n = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (n < 0 || 4 + n > blob.length || blob.subarray(4, 4 + n).toString('latin1') !== parts[0]) {
    throw bad(`the ${parts[0]} key in '${short(b64)}' is damaged (its blob does not start with its type)`);
  }
  return `${parts[0]} ${parts[1]}`;
}

function short(s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 40 ? clean.slice(0, 37) + '...' : clean;
}
