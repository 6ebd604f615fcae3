// Where the store and state live: flags over environment over XDG defaults.
import os from 'node:os';
import path from 'node:path';
import { UsageError } from './errors.js';
import { canonicalStoreDir } from './store-path.js';

export interface StoreConfig {
  /** Logical store dir: part of every store path's hash. */
  storeDir: string;
  /** db/, logs/, locks, current-load/, gcroots/. */
  stateDir: string;
}

function xdg(varName: string, fallback: string): string {
  const v = process.env[varName];
  return v && path.isAbsolute(v) ? v : path.join(os.homedir(), fallback);
}

export function defaultStoreDir(): string {
  return path.join(xdg('XDG_DATA_HOME', '.local/share'), 'drover', 'store');
}

export function defaultStateDir(): string {
  return path.join(xdg('XDG_STATE_HOME', '.local/state'), 'drover');
}

/**
 * Flags over environment over defaults. An empty flag is refused (it would resolve to the
 * current directory and make a store there); an empty variable counts as unset, as XDG's do.
 * The store dir must be absolute, as Nix requires: it is part of every store path's hash,
 * and a relative one would give other paths in another directory.
 */
export function resolveConfig(opts: { storeDir?: string; stateDir?: string } = {}): StoreConfig {
  for (const [flag, v] of [['--store-dir', opts.storeDir], ['--state-dir', opts.stateDir]] as const) {
    if (v === '') throw new UsageError(`${flag} needs a directory, got an empty value`);
  }
  const [storeDir, from] =
    opts.storeDir !== undefined ? [opts.storeDir, '--store-dir'] : process.env.DROVER_STORE_DIR ? [process.env.DROVER_STORE_DIR, 'DROVER_STORE_DIR'] : [defaultStoreDir(), 'the default'];
  if (!path.isAbsolute(storeDir)) throw new UsageError(`the store dir must be an absolute path (it is part of every store path's hash), got '${storeDir}' from ${from}`);
  const stateDir = opts.stateDir ?? (process.env.DROVER_STATE_DIR || defaultStateDir());
  return { storeDir: canonicalStoreDir(storeDir), stateDir: path.resolve(stateDir) };
}
