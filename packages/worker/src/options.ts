// drover-build's settings with their defaults, from flags and the environment.
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '@drover/store';
import { defaultSystemFeatures, thisSystem } from './system.js';
import { parseSandboxPath, type SandboxMode } from './sandbox.js';
import type { BuildOptions } from './scheduler.js';

export interface BuildFlags {
  maxJobs?: number;
  keepGoing?: boolean;
  dryRun?: boolean;
  maxSilentTime?: number;
  timeout?: number;
  buildHook?: string;
  hookTimeout?: number;
  hookRequests?: number;
  printBuildTrace?: boolean;
  printBuildLogs?: boolean;
  sandbox?: string;
  sandboxPaths?: string[];
  extraSandboxPaths?: string[];
  cacheFailures?: boolean;
  cores?: number;
  keepFailed?: boolean;
  system?: string;
  systemFeatures?: string[];
}

function count(v: number | undefined, flag: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 0) throw new UsageError(`${flag} must be a whole number >= 0, got '${v}'`);
  return v;
}

/**
 * The longest timer Node keeps: a longer one fires after 1 ms instead, which killed every
 * build at once under `--timeout 3000000`. About 24.8 days.
 */
export const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** A number of seconds that is armed as one timer. */
function seconds(v: number | undefined, flag: string, dflt: number): number {
  const n = count(v, flag, dflt);
  if (n > MAX_TIMER_SECONDS) throw new UsageError(`${flag} must be at most ${MAX_TIMER_SECONDS} seconds (24 days), got '${n}'`);
  return n;
}

/** Hook requests in flight at once: the flag, else DROVER_HOOK_REQUESTS, else HOOK_REQUESTS. */
function hookRequests(flag: number | undefined, env: string | undefined): number {
  if (flag !== undefined) {
    if (!Number.isInteger(flag) || flag < 1) throw new UsageError(`--hook-requests must be a whole number >= 1, got '${flag}'`);
    return flag;
  }
  if (env === undefined || env === '') return HOOK_REQUESTS;
  if (!/^[1-9]\d*$/.test(env)) throw new UsageError(`environment variable DROVER_HOOK_REQUESTS='${env}' is not a whole number >= 1`);
  return Number(env);
}

/** Default hook requests in flight: enough to overlap hook start-ups, few enough not to crowd the machine with hooks that postpone. */
export const HOOK_REQUESTS = 4;

/** Splits repeated and space-separated list flags into words. */
function words(v: string[] | undefined): string[] {
  return (v ?? []).flatMap((s) => String(s).split(/\s+/)).filter((s) => s !== '');
}

/**
 * Resolves flags over environment over defaults. The hook command is split on whitespace
 * (program, then leading arguments), so `--build-hook "drover-hook-ssh --machines m"` works.
 */
export function resolveBuildOptions(f: BuildFlags, env: NodeJS.ProcessEnv, stderr: (s: string) => void): BuildOptions {
  const cpus = os.availableParallelism();
  const sandbox = (f.sandbox ?? env.DROVER_SANDBOX ?? 'auto') as SandboxMode;
  if (!['auto', 'bwrap', 'none'].includes(sandbox)) {
    const from = f.sandbox === undefined ? 'environment variable DROVER_SANDBOX' : '--sandbox';
    throw new UsageError(`${from} must be auto, bwrap or none, got '${sandbox}'`);
  }
  const hook = f.buildHook ?? env.DROVER_BUILD_HOOK;
  const hookWords = hook === undefined || hook.trim() === '' ? undefined : hook.trim().split(/\s+/);
  // The hook runs in / (the protocol says so): a program named by a relative path is found
  // from here, as Nix makes NIX_BUILD_HOOK absolute; a bare name is looked up in PATH.
  if (hookWords && hookWords[0]!.includes('/')) hookWords[0] = path.resolve(hookWords[0]!);
  const system = f.system ?? thisSystem();
  if (system === '' || /\s/.test(system)) throw new UsageError(`--system must be one word, got '${system}'`);
  return {
    maxJobs: count(f.maxJobs, '--max-jobs', cpus),
    keepGoing: f.keepGoing ?? false,
    dryRun: f.dryRun ?? false,
    // Passed to the hook as a whole number too: a huge one would be written as '1e+21'.
    maxSilentTime: seconds(f.maxSilentTime, '--max-silent-time', 0),
    timeout: seconds(f.timeout, '--timeout', 0),
    buildHook: hookWords,
    hookReplyTimeout: seconds(f.hookTimeout, '--hook-timeout', 300) || 300,
    hookRequests: hookRequests(f.hookRequests, env.DROVER_HOOK_REQUESTS),
    printBuildTrace: f.printBuildTrace ?? false,
    printBuildLogs: f.printBuildLogs ?? false,
    sandbox,
    sandboxPaths: f.sandboxPaths === undefined ? undefined : words(f.sandboxPaths).map(parseSandboxPath),
    extraSandboxPaths: words(f.extraSandboxPaths).map(parseSandboxPath),
    cacheFailures: f.cacheFailures ?? false,
    cores: count(f.cores, '--cores', cpus) || cpus,
    keepFailed: f.keepFailed ?? false,
    thisSystem: system,
    systemFeatures: f.systemFeatures === undefined ? defaultSystemFeatures() : words(f.systemFeatures),
    postponeDelayMs: 1000,
    registerDelayMs: 100,
    stderr,
  };
}
