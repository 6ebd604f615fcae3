// Helpers for tests that run drover-store as a user would: temp dirs, the real binary.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { removeTree } from './nar.js';

export const STORE_BIN = fileURLToPath(new URL('../bin/drover-store.js', import.meta.url));
export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
export const TRICKY_TREE_SCRIPT = fileURLToPath(new URL('../../../tools/make-tricky-tree.sh', import.meta.url));

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

/** Runs a binary to completion with optional stdin; never throws on a non-zero exit. */
export function run(bin: string, args: string[], opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {}): RunResult {
  const r = spawnSync(process.execPath, [bin, ...args], {
    input: opts.input ?? '',
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd,
    maxBuffer: 1 << 30,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString(), stdoutBytes: r.stdout };
}

/** A fresh temp dir with `store/` and `state/`, removed by `cleanup` even when read-only. */
export function tempStore(prefix = 'drover-test-'): { dir: string; storeDir: string; stateDir: string; env: NodeJS.ProcessEnv; cleanup(): void } {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
  const storeDir = path.join(dir, 'store');
  const stateDir = path.join(dir, 'state');
  return {
    dir,
    storeDir,
    stateDir,
    env: { DROVER_STORE_DIR: storeDir, DROVER_STATE_DIR: stateDir },
    cleanup: () => removeTree(dir),
  };
}

/** Makes the tree of tricky cases (tools/make-tricky-tree.sh) at `dest`. */
export function makeTrickyTree(dest: string, big = false): void {
  const r = spawnSync('sh', [TRICKY_TREE_SCRIPT, dest, ...(big ? ['--big'] : [])], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('make-tricky-tree.sh failed');
}

/** Every entry under `dir`, relative, sorted: to assert that nothing was written. */
export function listTree(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

/** A NAR/export wire string: u64 LE length, the bytes, zero padding to 8 (for hand-made streams). */
export function narString(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  const out = Buffer.alloc(8 + Math.ceil(b.length / 8) * 8);
  out.writeBigUInt64LE(BigInt(b.length));
  b.copy(out, 8);
  return out;
}

/** A wire u64, little-endian. */
export function u64le(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}
