// The build hook protocol of DESIGN.md (from Nix 0.16): both sides' lines, in one place.
//
//   drover-build → hook (stdin):  `AM_WILLING SYSTEM DRV FEATURES`, and after accept
//                                 the inputs line and the outputs line, then EOF.
//   hook → drover-build (stderr): messages, then `# accept|decline|postpone`.
//   hook → drover-build (fd 4):   the remote build log.
//   hook exit status:             0 built, 100 the build failed (permanent), else hook failure.
import { UsageError } from '@drover/store';

export type HookReply = 'accept' | 'decline' | 'postpone';
export const HOOK_REPLIES: readonly HookReply[] = ['accept', 'decline', 'postpone'];

/** The fd on which the hook writes the build log of the (remote) builder. */
export const HOOK_LOG_FD = 4;
/** Exit status of a hook whose build failed for good (the build, not the hook). */
export const HOOK_EXIT_BUILD_FAILED = 100;

export interface HookRequest {
  /** True when drover-build has a free local slot and could build the derivation itself. */
  amWilling: boolean;
  system: string;
  drvPath: string;
  /** requiredSystemFeatures of the derivation. */
  features: string[];
}

/** A protocol violation by either side; the message names the line. */
export class HookProtocolError extends UsageError {}

/** The request line, with its newline. No features leaves the line ending in a space. */
export function formatHookRequest(r: HookRequest): string {
  for (const [what, v] of [['system', r.system], ['derivation', r.drvPath]] as const) {
    if (v === '' || /\s/.test(v)) throw new HookProtocolError(`hook request: the ${what} '${v}' is not a single word`);
  }
  for (const f of r.features) {
    if (f === '' || /[\s,]/.test(f)) throw new HookProtocolError(`hook request: the system feature '${f}' is empty or holds a space or comma`);
  }
  return `${r.amWilling ? '1' : '0'} ${r.system} ${r.drvPath} ${r.features.join(',')}\n`;
}

/** Parses a request line (without its newline), as a hook does. */
export function parseHookRequest(line: string): HookRequest {
  const m = /^([01]) (\S+) (\S+) (\S*)$/.exec(line);
  if (!m) throw new HookProtocolError(`bad hook request '${line}': expected 'AM_WILLING SYSTEM DRV FEATURES'`);
  return {
    amWilling: m[1] === '1',
    system: m[2]!,
    drvPath: m[3]!,
    features: m[4] === '' ? [] : m[4]!.split(','),
  };
}

/**
 * Classifies one line the hook printed (without its newline): the first `# WORD` line is the
 * reply; anything else is a message for the user.
 */
export function parseHookLine(line: string): { reply: string } | { message: string } {
  return line.startsWith('# ') ? { reply: line.slice(2) } : { message: line };
}

export function isHookReply(word: string): word is HookReply {
  return (HOOK_REPLIES as readonly string[]).includes(word);
}

/** The reply line a hook writes to stderr. */
export function formatHookReply(reply: HookReply): string {
  return `# ${reply}\n`;
}

/** The inputs or outputs line: paths separated by single spaces. */
export function formatPathsLine(paths: Iterable<string>): string {
  let s = '';
  for (const p of paths) {
    if (p === '' || /\s/.test(p)) throw new HookProtocolError(`hook paths line: '${p}' is not a single word`);
    s += `${p} `;
  }
  return `${s}\n`;
}

export function parsePathsLine(line: string): string[] {
  return line.split(' ').filter((p) => p !== '');
}

/** The hook's argv after its own name: THIS_SYSTEM MAX_SILENT_TIME PRINT_BUILD_TRACE. */
export function hookArgs(thisSystem: string, maxSilentTime: number, printBuildTrace: boolean): string[] {
  return [thisSystem, String(Math.max(0, Math.trunc(maxSilentTime))), printBuildTrace ? '1' : '0'];
}

export function parseHookArgs(argv: readonly string[]): { thisSystem: string; maxSilentTime: number; printBuildTrace: boolean } {
  if (argv.length !== 3) throw new HookProtocolError(`a build hook takes THIS_SYSTEM MAX_SILENT_TIME PRINT_BUILD_TRACE, got ${argv.length} arguments`);
  const [thisSystem, mst, pbt] = argv as [string, string, string];
  if (!/^\d+$/.test(mst)) throw new HookProtocolError(`MAX_SILENT_TIME must be a number of seconds, got '${mst}'`);
  if (pbt !== '0' && pbt !== '1') throw new HookProtocolError(`PRINT_BUILD_TRACE must be 0 or 1, got '${pbt}'`);
  return { thisSystem, maxSilentTime: Number(mst), printBuildTrace: pbt === '1' };
}
