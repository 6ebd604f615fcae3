// `npm run bench`: drover-trace's throughput on large synthetic Nix internal-json and Guix logs,
// against `cat` and `jq` on the same files in the same run, with peak memory.
// Size: first argument (e.g. 1G, 200M) or DROVER_BENCH_SCALE (a fraction of 1 GB); default 1 GB.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeGuixLog, writeNixJsonLog } from './bench-data.js';

const GB = 1024 ** 3;

function targetSize(): number {
  const arg = process.argv[2];
  if (arg) {
    const m = /^(\d+(?:\.\d+)?)([KMG]?)B?$/i.exec(arg);
    if (!m) throw new Error(`bad size '${arg}' (e.g. 1G, 200M)`);
    return Math.round(Number(m[1]) * ({ '': 1, K: 1024, M: 1024 ** 2, G: GB }[m[2]!.toUpperCase()] ?? 1));
  }
  const scale = Number(process.env['DROVER_BENCH_SCALE'] ?? '1');
  if (!(scale > 0)) throw new Error('DROVER_BENCH_SCALE must be a positive number');
  return Math.round(scale * GB);
}

interface Result { seconds: number; cpuSeconds: number | null; peakKiB: number | null; status: number | null }

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** Runs a command with stdout to /dev/null, timing it and sampling its peak resident memory. */
async function measure(cmd: string, args: string[], stdinFile?: string): Promise<Result> {
  const devnull = openSync('/dev/null', 'w');
  const input = stdinFile ? openSync(stdinFile, 'r') : 'ignore';
  const t0 = performance.now();
  const child = spawn(cmd, args, { stdio: [input, devnull, 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { if (stderr.length < 2000) stderr += d.toString(); });
  let peak: number | null = null;
  let cpu: number | null = null;
  // Sampled from /proc while it runs: the last 20 ms may be missed, which is noise at these sizes.
  const sample = (): void => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) peak = Math.max(peak ?? 0, Number(m[1]));
      const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      cpu = (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
    } catch { /* exited */ }
  };
  const timer = setInterval(sample, 20);
  const status = await new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(timer);
  closeSync(devnull);
  if (typeof input === 'number') closeSync(input);
  if (status !== 0 && status !== 1) process.stderr.write(`bench: ${cmd} ${args.join(' ')} exited ${status}: ${stderr}\n`);
  return { seconds, cpuSeconds: cpu, peakKiB: peak, status };
}

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

async function main(): Promise<void> {
  const size = targetSize();
  const cli = fileURLToPath(new URL('./cli.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'drover-trace-bench-'));
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  process.on('SIGINT', () => { cleanup(); process.exit(130); });
  try {
    const nix = join(dir, 'nix-internal-json.log');
    const nixJson = join(dir, 'nix-internal-json.jsonl');
    const guix = join(dir, 'guix.log');
    process.stdout.write(`drover-trace bench: generating ${(size / 1024 ** 2).toFixed(0)} MiB logs in ${dir}\n`);
    await writeNixJsonLog(nix, size);
    await writeGuixLog(guix, size);
    const hasJq = have('jq');
    // jq reads JSON, so it gets the same lines without their `@nix ` prefix.
    if (hasJq) spawnSync('sh', ['-c', `sed 's/^@nix //' "$1" > "$2"`, 'sh', nix, nixJson]);

    const rows: { input: string; tool: string; bytes: number; r: Result }[] = [];
    const run = async (input: string, tool: string, file: string, cmd: string, args: string[]): Promise<void> => {
      const r = await measure(cmd, args);
      rows.push({ input, tool, bytes: statSync(file).size, r });
      const mbs = statSync(file).size / 1e6 / r.seconds;
      const cpu = r.cpuSeconds !== null && r.cpuSeconds > 0 ? `${r.cpuSeconds.toFixed(2).padStart(7)} s cpu ${(statSync(file).size / 1e6 / r.cpuSeconds).toFixed(0).padStart(6)} MB/s-cpu` : ' '.repeat(28);
      process.stdout.write(`  ${input.padEnd(14)} ${tool.padEnd(28)} ${r.seconds.toFixed(2).padStart(7)} s ${mbs.toFixed(0).padStart(6)} MB/s  ${cpu}` +
        `${r.peakKiB !== null ? `  peak RSS ${(r.peakKiB / 1024).toFixed(0)} MiB` : ''}\n`);
    };
    for (const [input, file] of [['internal-json', nix], ['guix', guix]] as const) {
      await run(input, 'cat', file, 'cat', [file]);
      if (hasJq && input === 'internal-json') await run(input, 'jq -c . (prefix stripped)', nixJson, 'jq', ['-c', '.', nixJson]);
      if (hasJq) await run(input, 'jq -cR .', file, 'jq', ['-cR', '.', file]);
      await run(input, 'drover-trace --format json', file, process.execPath, [cli, '--format', 'json', file]);
      await run(input, 'drover-trace --format plain', file, process.execPath, [cli, '--format', 'plain', file]);
    }
    if (!hasJq) process.stdout.write('  (jq not found: its rows are missing)\n');

    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    process.stdout.write(`\nload average ${load} on ${spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()} cores: wall-clock figures suffer when it is high\n`);
    process.stdout.write('\nratios (drover-trace throughput / other tool throughput, wall clock):\n');
    for (const input of ['internal-json', 'guix']) {
      const mine = rows.filter((x) => x.input === input && x.tool.startsWith('drover-trace'));
      const others = rows.filter((x) => x.input === input && !x.tool.startsWith('drover-trace'));
      for (const m of mine) {
        const rate = m.bytes / m.r.seconds;
        const parts = others.map((o) => `${(rate / (o.bytes / o.r.seconds)).toFixed(2)}x ${o.tool}`);
        process.stdout.write(`  ${input.padEnd(14)} ${m.tool.padEnd(28)} ${parts.join(', ')}\n`);
      }
    }
    const slow = rows.filter((x) => x.tool.startsWith('drover-trace') && x.bytes / x.r.seconds < 200e6);
    process.stdout.write(slow.length === 0 ? '\ntarget met: every drover-trace run at or above 200 MB/s\n'
      : `\nbelow the 200 MB/s target: ${slow.map((x) => `${x.input} ${x.tool}`).join('; ')}\n`);
  } finally {
    cleanup();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`drover-trace bench: error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
