// Helpers for the tests: fixture files, the built binary, and event look-ups.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BuildFailed, TraceEvent } from './events.js';

export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
export const BIN = fileURLToPath(new URL('../bin/drover-trace.js', import.meta.url));

export const fixture = (name: string): Buffer => readFileSync(FIXTURES + name);

/** Final state of each derivation by name: `ok`, or the cause of its last failure. */
export function finalStates(events: TraceEvent[]): Record<string, string> {
  const states: Record<string, string> = {};
  for (const ev of events) {
    if (ev.type === 'build-succeeded') states[name(ev.drv)] = 'ok';
    if (ev.type === 'build-failed') states[name(ev.drv)] = (ev as BuildFailed).cause;
  }
  return states;
}

export const name = (drv: string): string => drv.replace(/^.*\/[0-9a-z]{32}-/, '').replace(/\.drv$/, '');

export interface RunResult { status: number | null; stdout: string; stderr: string; stdoutBytes: Buffer }

/** Runs bin/drover-trace.js with input on stdin; `timeout` (ms) kills a run that hangs, so its test fails rather than waits. */
export function runBin(args: string[], input: Buffer | string = '', env: NodeJS.ProcessEnv = {}, timeout = 0): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'], timeout, killSignal: 'SIGKILL' });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.stdin.on('error', () => {});
    child.on('close', (status) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({ status, stdout: stdoutBytes.toString(), stderr: Buffer.concat(err).toString(), stdoutBytes });
    });
    child.stdin.end(input);
  });
}
