// What every drover benchmark shares: timing real commands (wall time, peak memory) and
// printing drover against Nix as ratios, measured in the same run.
import { spawnSync } from 'node:child_process';
import { DroverError } from './errors.js';

export interface Measurement {
  seconds: number;
  maxRssMb: number;
}

/**
 * Runs `sh -c script` under GNU time and returns wall seconds and peak RSS. A failing
 * command aborts the benchmark: a ratio against a failed run would be a lie.
 */
export function measure(script: string, env: NodeJS.ProcessEnv = {}): Measurement {
  const start = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', 'sh', '-c', script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 1 << 26,
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const err = r.stderr.toString().trimEnd().split('\n');
  if (r.status !== 0) throw new DroverError(`benchmark command failed (${r.status}): ${script}\n${err.slice(-10).join('\n')}`);
  return { seconds, maxRssMb: Number(err[err.length - 1]) / 1024 };
}

/** Best of `n` runs (the least disturbed by the other core's noise). */
export function best(n: number, fn: () => Measurement): Measurement {
  let b: Measurement | undefined;
  for (let i = 0; i < n; i++) {
    const m = fn();
    if (!b || m.seconds < b.seconds) b = m;
  }
  return b!;
}

export interface Row {
  name: string;
  drover: Measurement;
  nix: Measurement;
  /** Bytes processed, to print throughput; or items, with `unit`. */
  amount?: number;
  unit?: 'MB' | 'paths' | 'drvs';
  target?: string;
}

export function printRows(title: string, rows: Row[]): void {
  const lines = [`\n## ${title}`, '| benchmark | drover | nix | drover/nix time | drover peak RSS | nix peak RSS | target |', '|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const rate = (m: Measurement) =>
      r.amount === undefined ? `${m.seconds.toFixed(3)} s` : r.unit === 'MB' || r.unit === undefined ? `${m.seconds.toFixed(3)} s (${(r.amount / 1e6 / m.seconds).toFixed(0)} MB/s)` : `${m.seconds.toFixed(3)} s (${(r.amount / m.seconds).toFixed(0)} ${r.unit}/s)`;
    lines.push(
      `| ${r.name} | ${rate(r.drover)} | ${rate(r.nix)} | ${(r.drover.seconds / r.nix.seconds).toFixed(2)} | ${r.drover.maxRssMb.toFixed(0)} MB | ${r.nix.maxRssMb.toFixed(0)} MB | ${r.target ?? ''} |`,
    );
  }
  process.stdout.write(lines.join('\n') + '\n');
}

/** DROVER_BENCH_SCALE (default 1) shrinks every benchmark's data for a quick look. */
export function benchScale(): number {
  const s = Number(process.env.DROVER_BENCH_SCALE ?? '1');
  if (!(s > 0)) throw new DroverError(`DROVER_BENCH_SCALE must be a positive number, got '${process.env.DROVER_BENCH_SCALE}'`, 2);
  return s;
}

/** Quotes a word for sh. */
export function sq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
