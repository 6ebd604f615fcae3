// Shared by the validity tests: made-up store paths, their NARs, export streams and registrations.
import fs from 'node:fs';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ENTRY_START, STREAM_END, encodeTrailer, hashBytes, toBase32 } from '@drover/store';
import { STORE_BIN, run, type RunResult, narString } from '@drover/store/testing';

export interface FakePath {
  path: string;
  contents: Buffer;
  references: string[];
  deriver?: string;
}

/** A path name `HASH-NAME` whose hash part comes from `seed`: distinct seeds, distinct paths. */
export function fakeStorePath(storeDir: string, seed: string, name: string): string {
  return `${storeDir}/${toBase32(hashBytes('sha256', seed).bytes.subarray(0, 20))}-${name}`;
}

/**
 * A chain of `n` single-file paths, each referring to the one before (and mentioning its
 * references in its contents, as real outputs do); `size` pads each file.
 */
export function makeChain(storeDir: string, seed: string, n: number, size = 0): FakePath[] {
  const out: FakePath[] = [];
  for (let i = 0; i < n; i++) {
    const p = fakeStorePath(storeDir, `${seed}:${i}`, `${seed}-${i}`);
    const references = i > 0 ? [out[i - 1]!.path] : [];
    const head = Buffer.from(`${p}\n${references.join('\n')}\n`);
    const contents = size > head.length ? Buffer.concat([head, Buffer.alloc(size - head.length, i % 251)]) : head;
    out.push({ path: p, contents, references });
  }
  return out;
}


/** The NAR of a regular, non-executable file. */
export function narOfFile(contents: Buffer): Buffer {
  return Buffer.concat(['nix-archive-1', '(', 'type', 'regular', 'contents'].map((t) => narString(t)).concat([narString(contents), narString(')')]));
}

/** An export stream of the paths in the order given (references first for a chain). */
export function exportStream(paths: readonly FakePath[]): Buffer {
  const parts: Buffer[] = [];
  for (const p of paths) parts.push(ENTRY_START, narOfFile(p.contents), encodeTrailer({ path: p.path, references: p.references, deriver: p.deriver }));
  parts.push(STREAM_END);
  return Buffer.concat(parts);
}

/** Writes the paths' files into the store dir (not registered), as a builder would leave them. */
export function writeOnDisk(paths: readonly FakePath[]): void {
  for (const p of paths) {
    fs.mkdirSync(path.dirname(p.path), { recursive: true });
    if (!fs.existsSync(p.path)) fs.writeFileSync(p.path, p.contents);
  }
}

/** register-validity input; with `hashGiven` the NAR hash and size follow each path. */
export function registrationText(paths: readonly FakePath[], hashGiven = false): string {
  let s = '';
  for (const p of paths) {
    s += `${p.path}\n`;
    if (hashGiven) {
      const nar = narOfFile(p.contents);
      s += `${hashBytes('sha256', nar).hex}\n${nar.length}\n`;
    }
    s += `${p.deriver ?? ''}\n${p.references.length}\n${p.references.map((r) => `${r}\n`).join('')}`;
  }
  return s;
}

/** drover-store with a store's env. */
export function drover(env: NodeJS.ProcessEnv, args: string[], input?: string | Buffer): RunResult {
  return run(STORE_BIN, args, { env, input });
}

/** Everything under `dir` with sizes and modes, to assert that a failed command changed nothing. */
export function snapshot(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .sort()
    .map((n) => {
      const st = fs.lstatSync(path.join(dir, n));
      return `${n} ${st.mode.toString(8)} ${st.isFile() ? st.size : ''}`;
    });
}

/** Real Nix 2.8 pointed at a store and state dir (NIX_STATE_DIR holds db/, as drover's state dir). */
export function nixEnv(root: string, storeDir: string, stateDir: string): NodeJS.ProcessEnv {
  const conf = path.join(root, 'nix-etc');
  fs.mkdirSync(conf, { recursive: true });
  fs.writeFileSync(path.join(conf, 'nix.conf'), 'sandbox = false\nbuild-users-group =\nexperimental-features = nix-command\nsubstituters =\n');
  return { NIX_STORE_DIR: storeDir, NIX_STATE_DIR: stateDir, NIX_LOG_DIR: path.join(root, 'nix-log'), NIX_CONF_DIR: conf, NIX_PATH: '' };
}

/** A Nix command (pointed at a store by `env`, from nixEnv), run to its end. */
export function nix(env: NodeJS.ProcessEnv, cmd: string, args: string[], input?: Buffer | string): { code: number | null; stdout: string; stderr: string; bytes: Buffer } {
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, input: input ?? '', maxBuffer: 1 << 30 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString(), bytes: r.stdout };
}

/** `r`, asserted to have exited 0. */
export function ok<T extends { code: number | null; stderr: string }>(r: T, what: string): T {
  assert.equal(r.code, 0, `${what} failed: ${r.stderr}`);
  return r;
}
