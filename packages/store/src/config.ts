// Where the store and state live: flags over environment over XDG defaults.
import os from 'node:os';
import path from 'node:path';
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

export function resolveConfig(opts: { storeDir?: string; stateDir?: string } = {}): StoreConfig {
  const storeDir = opts.storeDir ?? process.env.DROVER_STORE_DIR ?? defaultStoreDir();
  const stateDir = opts.stateDir ?? process.env.DROVER_STATE_DIR ?? defaultStateDir();
  return { storeDir: canonicalStoreDir(path.resolve(storeDir)), stateDir: path.resolve(stateDir) };
}
