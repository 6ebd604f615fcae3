// drover-build's settings with their defaults, from flags and the environment.
import os from 'node:os';
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
  if (!['auto', 'bwrap', 'none'].includes(sandbox)) throw new UsageError(`--sandbox must be auto, bwrap or none, got '${sandbox}'`);
  const hook = f.buildHook ?? env.DROVER_BUILD_HOOK;
  const hookWords = hook === undefined || hook.trim() === '' ? undefined : hook.trim().split(/\s+/);
  const system = f.system ?? thisSystem();
  if (system === '' || /\s/.test(system)) throw new UsageError(`--system must be one word, got '${system}'`);
  return {
    maxJobs: count(f.maxJobs, '--max-jobs', cpus),
    keepGoing: f.keepGoing ?? false,
    dryRun: f.dryRun ?? false,
    maxSilentTime: count(f.maxSilentTime, '--max-silent-time', 0),
    timeout: count(f.timeout, '--timeout', 0),
    buildHook: hookWords,
    hookReplyTimeout: count(f.hookTimeout, '--hook-timeout', 300) || 300,
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
