// What runs on the remote side, per engine: drover (drover-store/drover-build) or real Nix (nix-store).
//
// Every command is one line of POSIX sh run as `exec sh -c '…'`, so the remote user's login
// shell (bash, zsh, fish, even csh) only has to understand one quoted word.
import type { Machine } from './machines.js';
import { sq } from './ssh.js';

/** Exit codes of the remote build command that are not the builder's own. */
export const REMOTE_EXIT = {
  /** drover-build/nix-store failed without it being a build failure (status in the log). */
  buildToolFailed: 90,
  /** The build succeeded but exporting its outputs failed. */
  exportFailed: 91,
  /** The remote build tool is not on the remote PATH. */
  toolMissing: 92,
} as const;

export interface RemoteEngine {
  name: 'drover' | 'drover-cli' | 'nix';
  /** The `drover-hook-ssh serve` command, for the engine that does a whole build in one session. */
  serveCommand?: () => string;
  /**
   * Prints `key=value` lines (store-dir, tool, version, free-kb), then `--`, then (with
   * `query`) the paths read from stdin that are not valid there.
   */
  probeAndMissing(query: boolean): string;
  /** Reads an export stream on stdin and registers it. */
  importCommand(): string;
  /**
   * Builds `drv`, the log on stderr, then exports `outputs` on stdout. The build is killed
   * when stdin reaches end of file: the hook (or its connection) is gone.
   */
  buildCommand(drv: string, outputs: readonly string[], maxSilentTime: number): string;
  /** What the remote tool puts before each log line of the derivation called `name`, if anything. */
  logPrefix?: (name: string) => string;
}

/** A remote command: the machine's PATH additions, then `script`, as one `exec sh -c '…'` word. */
export function wrapRemote(m: Machine, script: string): string {
  const pathSet = m.remotePath.length > 0 ? `PATH=${m.remotePath.map(sq).join(':')}:"$PATH"; export PATH; ` : '';
  return `exec sh -c ${sq(pathSet + script)}`;
}

/**
 * The watchdog around a remote build: the build runs in the background (in its own session
 * when `setsid` exists, so the whole process group can be signalled); a second job waits for
 * end of file on the connection's stdin and then kills it, TERM first and KILL 5 s later.
 */
function watchdog(build: string, exportCmd: string, tool: string): string {
  return seq([
    'exec 3<&0 </dev/null',
    `if command -v setsid >/dev/null 2>&1; then setsid ${build} 3<&- & else ${build} 3<&- & fi`,
    'b=$!',
    '( read -r _ <&3; kill -TERM -$b 2>/dev/null || kill -TERM $b 2>/dev/null; sleep 5; kill -KILL -$b 2>/dev/null || kill -KILL $b 2>/dev/null ) >/dev/null 2>&1 &',
    'w=$!',
    'exec 3<&-',
    'wait $b; s=$?',
    'kill $w 2>/dev/null',
    `if [ $s -ge 100 ] && [ $s -le 104 ]; then exit $s; fi`,
    `if [ $s -ne 0 ]; then echo "drover-hook-ssh: ${tool} on $(hostname 2>/dev/null) exited with status $s" >&2; exit ${REMOTE_EXIT.buildToolFailed}; fi`,
    `${exportCmd} || exit ${REMOTE_EXIT.exportFailed}`,
  ]);
}

/** Joins commands into one line; a command sent to the background already ends in `&`. */
function seq(cmds: string[]): string {
  return cmds.map((c, i) => (i === cmds.length - 1 ? c : c.endsWith('&') ? `${c} ` : `${c}; `)).join('');
}

function toolCheck(tools: string[]): string {
  return tools.map((t) => `command -v ${t} >/dev/null 2>&1 || { echo "drover-hook-ssh: ${t} is not on the remote PATH ($PATH)" >&2; exit ${REMOTE_EXIT.toolMissing}; }`).join('; ');
}

/** One `drover-hook-ssh serve` session per remote build (see serve.ts); the probe is plain sh. */
export function droverServeEngine(m: Machine): RemoteEngine {
  const cli = droverEngine(m);
  return {
    ...cli,
    name: 'drover',
    probeAndMissing: (query) =>
      wrapRemote(
        m,
        [
          'd="${DROVER_STORE_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/drover/store}"',
          'echo "store-dir=$d"',
          'echo "tool=$(command -v drover-hook-ssh)"',
          'echo "node=$(node --version 2>/dev/null)"',
          'echo "free-kb=$(df -Pk "$d" 2>/dev/null | awk \'NR==2{print $4}\')"',
          'echo --',
          toolCheck(['drover-hook-ssh']),
          ...(query ? ['drover-store query --print-invalid -'] : []),
        ].join('; '),
      ),
    serveCommand: () => wrapRemote(m, `unset DROVER_BUILD_HOOK; ${toolCheck(['drover-hook-ssh'])}; exec drover-hook-ssh serve`),
  };
}

/** drover's command-line tools, one process per step. */
export function droverEngine(m: Machine): RemoteEngine {
  return {
    name: 'drover-cli',
    probeAndMissing: (query) =>
      wrapRemote(
        m,
        [
          // drover-store's own rule (flag > DROVER_STORE_DIR > XDG default), as the remote tools will apply it.
          'd="${DROVER_STORE_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/drover/store}"',
          'echo "store-dir=$d"',
          'echo "tool=$(command -v drover-store)"',
          'echo "builder=$(command -v drover-build)"',
          'echo "node=$(node --version 2>/dev/null)"',
          'echo "free-kb=$(df -Pk "$d" 2>/dev/null | awk \'NR==2{print $4}\')"',
          'echo --',
          toolCheck(['drover-store', 'drover-build']),
          ...(query ? ['drover-store query --print-invalid -'] : []),
        ].join('; '),
      ),
    importCommand: () => wrapRemote(m, `${toolCheck(['drover-store'])}; drover-store import >/dev/null`),
    logPrefix: (name) => `${name}> `,
    buildCommand: (drv, outputs, mst) =>
      wrapRemote(
        m,
        `unset DROVER_BUILD_HOOK; ${toolCheck(['drover-build', 'drover-store'])}; ` +
          watchdog(`drover-build -L${mst > 0 ? ` --max-silent-time ${mst}` : ''} ${sq(drv)} >/dev/null`, `drover-store export ${outputs.map(sq).join(' ')}`, 'drover-build'),
      ),
  };
}

export function nixEngine(m: Machine): RemoteEngine {
  return {
    name: 'nix',
    probeAndMissing: (query) =>
      wrapRemote(
        m,
        [
          'd="${NIX_STORE_DIR:-/nix/store}"',
          'echo "store-dir=$d"',
          'echo "tool=$(command -v nix-store)"',
          'echo "version=$(nix-store --version 2>/dev/null)"',
          'echo "free-kb=$(df -Pk "$d" 2>/dev/null | awk \'NR==2{print $4}\')"',
          'echo --',
          toolCheck(['nix-store']),
          ...(query ? ['xargs -r nix-store --check-validity --print-invalid'] : []),
        ].join('; '),
      ),
    importCommand: () => wrapRemote(m, `${toolCheck(['nix-store'])}; nix-store --import >/dev/null`),
    buildCommand: (drv, outputs, mst) =>
      wrapRemote(
        m,
        `${toolCheck(['nix-store'])}; ` +
          watchdog(
            `nix-store --realise ${sq(drv)} --option builders '' ${mst > 0 ? `--max-silent-time ${mst} ` : ''}>/dev/null`,
            `nix-store --export ${outputs.map(sq).join(' ')}`,
            'nix-store',
          ),
      ),
  };
}

export function engineFor(m: Machine): RemoteEngine {
  return m.engine === 'nix' ? nixEngine(m) : m.engine === 'drover-cli' ? droverEngine(m) : droverServeEngine(m);
}

/** What a probe learnt about a machine. */
export interface ProbeInfo {
  storeDir: string;
  tool: string;
  builder?: string;
  /** The remote tool's own version (engine=nix: `nix-store --version`); drover's comes in a session's hello. */
  version: string;
  /** node's version, for the drover engines (which run on it). */
  node?: string;
  freeKb?: number;
}

/** A remote that answers something other than the probe's format: exit 1 naming the machine. */
export class RemoteProtocolError extends Error {}

/** Splits the probe's output into its key=value head and the missing paths after `--`. */
export function parseProbeOutput(text: string, storeDir: string, uri: string): { info: ProbeInfo; missing: string[] } {
  const lines = text.split('\n');
  const sep = lines.indexOf('--');
  if (sep < 0) throw new RemoteProtocolError(`${uri} answered the probe with ${describe(text)} instead of 'key=value' lines and '--'`);
  const kv = new Map<string, string>();
  for (const l of lines.slice(0, sep)) {
    const eq = l.indexOf('=');
    if (eq <= 0) throw new RemoteProtocolError(`${uri} answered the probe with the line ${describe(l)} instead of key=value (is something printing from the remote shell's startup files?)`);
    kv.set(l.slice(0, eq), l.slice(eq + 1));
  }
  const free = kv.get('free-kb');
  const info: ProbeInfo = {
    storeDir: kv.get('store-dir') ?? '',
    tool: kv.get('tool') ?? '',
    builder: kv.get('builder'),
    version: kv.get('version') ?? '',
    node: kv.get('node') || undefined,
    freeKb: free && /^\d+$/.test(free) ? Number(free) : undefined,
  };
  const missing: string[] = [];
  for (const l of lines.slice(sep + 1)) {
    if (l === '') continue;
    if (!l.startsWith(storeDir + '/') || /\s/.test(l)) throw new RemoteProtocolError(`${uri} answered the missing-paths query with ${describe(l)}, which is not a store path in ${storeDir}`);
    missing.push(l);
  }
  return { info, missing };
}

function describe(s: string): string {
  if (s === '') return 'nothing';
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return `'${clean.length > 120 ? clean.slice(0, 117) + '...' : clean}'`;
}
