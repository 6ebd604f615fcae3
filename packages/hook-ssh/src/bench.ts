// Benchmark of drover-hook-ssh against real sshd machines: dispatch overhead, copy throughput, and 200 builds against Nix 2.8's remote builds.
//
// Everything runs in one farm (sshd per machine on loopback, own store behind the same
// store dir), in the same run, so the ratios compare like with like on this machine.
// DROVER_BENCH_SCALE (default 1) scales the copy size (200 MB) and the number of builds (200).
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Store, addDerivation, exportPaths, type Derivation } from '@drover/store';
import { BIN_DIR, Farm } from './sshd-farm.js';
import { parseMachines } from './machines.js';
import { hookSettings } from './settings.js';
import { sshArgs } from './ssh.js';

const scale = Number(process.env.DROVER_BENCH_SCALE ?? '1');
if (!(scale > 0)) {
  process.stderr.write(`bench: DROVER_BENCH_SCALE must be a positive number, got '${process.env.DROVER_BENCH_SCALE}'\n`);
  process.exit(2);
}
const COPY_BYTES = Math.max(4, Math.round(200 * scale)) * 1024 * 1024;
const N_DRVS = Math.max(4, Math.round(200 * scale));
const DISPATCH_RUNS = Math.max(3, Math.round(5 * Math.min(1, scale)));
const JOBS_PER_MACHINE = 4;
/** Sections to run (arguments: dispatch, copy, farm); all by default. */
const SECTIONS = new Set(process.argv.slice(2).length ? process.argv.slice(2) : ['dispatch', 'copy', 'farm']);

function log(s: string): void {
  process.stderr.write(`bench: ${s}\n`);
}

interface Run {
  seconds: number;
  stderr: string;
}

/** Runs a command to completion, timing it; a failure aborts the benchmark (a ratio against a failed run means nothing). */
async function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<Run> {
  const t0 = process.hrtime.bigint();
  const child = spawn(cmd, args, { env, stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    if (stderr.length > 1 << 22) stderr = stderr.slice(-(1 << 21));
  });
  if (input !== undefined) child.stdin!.end(input);
  const code = await new Promise<number | null>((r) => child.once('close', r));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (code !== 0) throw new Error(`${cmd} ${args.slice(0, 6).join(' ')}… failed (${code}):\n${stderr.split('\n').slice(-15).join('\n')}`);
  return { seconds, stderr };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function trivialDrvs(store: Store, system: string, prefix: string, n: number, inputSrcs: string[] = []): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = `${prefix}-${i}`;
    const drv: Derivation = {
      outputs: { out: { path: '' } },
      inputDrvs: {},
      inputSrcs,
      system,
      builder: '/bin/sh',
      args: ['-c', `echo ${name} > $out`],
      env: { name, system, builder: '/bin/sh', out: '' },
    };
    out.push(await addDerivation(store, drv, name));
  }
  return out;
}

function nixEnv(farm: Farm): NodeJS.ProcessEnv {
  const conf = path.join(farm.dir, 'local-nix-conf');
  fs.mkdirSync(conf, { recursive: true });
  fs.writeFileSync(path.join(conf, 'nix.conf'), 'sandbox = false\nbuild-users-group =\nexperimental-features = nix-command\nsubstituters =\n');
  return farm.env({ NIX_CONF_DIR: conf, NIX_LOG_DIR: path.join(farm.dir, 'local-nix-log'), NIX_REMOTE: '' });
}

/** What every section shares: the farm, its store, the two ways to build. */
interface Bench {
  farm: Farm;
  store: Store;
  rows: string[];
  /** drover-build with the hook and no local slot. */
  build: (drvs: string[], env: NodeJS.ProcessEnv, input?: string) => Promise<Run>;
  /** A machines file with the given machines, JOBS_PER_MACHINE slots each. */
  machinesFile: (ms: Farm['machines'], name: string) => string;
  nix: NodeJS.ProcessEnv;
  /** Nix's `builders` setting for the given machines. */
  builders: (ms: Farm['machines']) => string;
}

const ms = (x: number) => `${(x * 1000).toFixed(0)} ms`;

/** 1. Dispatch overhead of one trivial remote build: shared connection, fresh one, local, Nix. */
async function benchDispatch(b: Bench): Promise<void> {
  log('dispatch: one trivial derivation at a time');
  const { farm, store } = b;
  const m1 = farm.machines[0]!;
  const oneEnv = farm.env({ DROVER_MACHINES: b.machinesFile([m1], 'dispatch-machines') });
  const times: Record<'shared' | 'fresh' | 'local' | 'nix', number[]> = { shared: [], fresh: [], local: [], nix: [] };
  // Warm the shared master connection first: its set-up is what "shared" saves.
  await b.build(await trivialDrvs(store, farm.system, 'warm', 1), oneEnv);
  for (let i = 0; i < DISPATCH_RUNS; i++) {
    const drv = async (p: string) => trivialDrvs(store, farm.system, `dispatch-${p}-${i}`, 1);
    times.shared.push((await b.build(await drv('shared'), oneEnv)).seconds);
    times.fresh.push((await b.build(await drv('fresh'), { ...oneEnv, DROVER_HOOK_SSH_SHARE: '0' })).seconds);
    times.local.push((await timed(path.join(BIN_DIR, 'drover-build'), ['--max-jobs', '1', '--sandbox', 'none', ...(await drv('local'))], farm.env())).seconds);
    times.nix.push((await timed('nix-store', ['-r', ...(await drv('nix')), '--max-jobs', '0', '--option', 'builders', b.builders([m1])], b.nix)).seconds);
  }
  const local = median(times.local);
  b.rows.push(`\n## drover-hook-ssh: dispatch of one trivial remote build (median of ${DISPATCH_RUNS})`);
  b.rows.push('| what | time | overhead over a local build |', '|---|---|---|');
  b.rows.push(`| drover-build, local build (no hook) | ${ms(local)} | — |`);
  b.rows.push(`| drover-build + hook, shared connection | ${ms(median(times.shared))} | ${ms(median(times.shared) - local)} |`);
  b.rows.push(`| drover-build + hook, fresh connection each time | ${ms(median(times.fresh))} | ${ms(median(times.fresh) - local)} |`);
  b.rows.push(`| nix-store -r with builders (Nix 2.8) | ${ms(median(times.nix))} | ${ms(median(times.nix) - local)} |`);
}

/** 2. Closure copy throughput: the hook's upload against raw `ssh host cat >/dev/null` of the same bytes. */
async function benchCopy(b: Bench): Promise<void> {
  log(`copy: ${COPY_BYTES >> 20} MiB of inputs to one machine`);
  const { farm, store } = b;
  const m1 = farm.machines[0]!;
  const machines = b.machinesFile([m1], 'copy-machines');
  const blobs: string[] = [];
  const parts = 4;
  for (let i = 0; i < parts; i++) {
    const f = path.join(farm.dir, `blob-${i}`);
    const fd = fs.openSync(f, 'w');
    const chunk = Buffer.alloc(1 << 20);
    for (let j = 0; j < COPY_BYTES / parts / chunk.length; j++) {
      for (let k = 0; k < chunk.length; k += 4) chunk.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, k);
      fs.writeSync(fd, chunk);
    }
    fs.closeSync(fd);
    blobs.push(await store.addToStore(f, { recursive: true }));
    fs.rmSync(f);
  }
  blobs.sort();
  // Each upload starts from an empty machine, so the same bytes travel every time; like the
  // raw copy below, the first run warms up (here: the agent's start and its JIT) and the
  // best of the next two counts.
  const upload = async (i: number) => {
    m1.clearStore();
    const [drv] = await trivialDrvs(store, farm.system, `copy-${i}`, 1, blobs);
    const run = await b.build([drv!], farm.env({ DROVER_MACHINES: machines, DROVER_HOOK_SSH_DEBUG: '1' }));
    const up = /uploaded (\d+) paths, (\d+) bytes: (\d+) ms/.exec(run.stderr);
    if (!up) throw new Error(`no upload figures in the hook's output:\n${run.stderr}`);
    return { drv: drv!, paths: Number(up[1]), bytes: Number(up[2]), seconds: Number(up[3]) / 1000 };
  };
  const first = await upload(0);
  const runs = [await upload(1), await upload(2)];
  const best = runs.reduce((x, y) => (y.seconds < x.seconds ? y : x));
  const copyDrv = first.drv;
  const up = [best.paths, best.bytes] as const;
  const upBytes = best.bytes;
  const upSeconds = best.seconds;
  // The same bytes through the same shared connection into `cat > /dev/null`.
  const streamFile = path.join(farm.dir, 'stream');
  const ws = fs.createWriteStream(streamFile);
  await exportPaths(store, [...blobs, copyDrv!], (c) => {
    if (!ws.write(c)) return new Promise<void>((r) => ws.once('drain', () => r()));
  });
  await new Promise<void>((r) => ws.end(() => r()));
  const m = parseMachines(m1.line({ maxJobs: 1 }), machines)[0]!;
  const rawCopy = () => timed('sh', ['-c', `exec ssh "$@" 'cat > /dev/null' < ${streamFile}`, 'sh', ...sshArgs(farm.stateDir, m, hookSettings(farm.env()))], farm.env());
  await rawCopy();
  const raw = Math.min((await rawCopy()).seconds, (await rawCopy()).seconds);
  const streamBytes = fs.statSync(streamFile).size;
  fs.rmSync(streamFile);
  const mbps = (n: number, t: number) => `${(n / 1048576 / t).toFixed(0)} MiB/s`;
  b.rows.push('\n## drover-hook-ssh: closure copy to a machine (export | ssh | import, registered) against raw `ssh host cat >/dev/null`');
  b.rows.push('| what | bytes | time | throughput | hook/raw throughput | target |', '|---|---|---|---|---|---|');
  b.rows.push(`| raw ssh cat >/dev/null (shared connection, best of 2) | ${streamBytes} | ${raw.toFixed(2)} s | ${mbps(streamBytes, raw)} | — | |`);
  b.rows.push(`| hook upload (${up[0]} paths, best of 2 after a warm-up; first, cold: ${first.seconds.toFixed(2)} s) | ${upBytes} | ${upSeconds.toFixed(2)} s | ${mbps(upBytes, upSeconds)} | ${(upBytes / upSeconds / (streamBytes / raw)).toFixed(2)} | ≥ 0.80 |`);
}

/** 3. N trivial derivations over two machines: drover against Nix 2.8's remote builds, same machines. */
async function benchFarm(b: Bench): Promise<void> {
  log(`farm: ${N_DRVS} trivial derivations over 2 machines, drover then Nix`);
  const { farm, store } = b;
  const env = farm.env({ DROVER_MACHINES: b.machinesFile(farm.machines, 'farm-machines') });
  const droverSet = await trivialDrvs(store, farm.system, 'farm-drover', N_DRVS);
  const nixSet = await trivialDrvs(store, farm.system, 'farm-nix', N_DRVS);
  const d = await b.build(['-'], env, droverSet.join('\n') + '\n');
  const n = await timed('nix-store', ['-r', ...nixSet, '--max-jobs', '0', '--option', 'builders', b.builders(farm.machines)], b.nix);
  const spread = (set: string[]) => {
    const outs = set.map((drv) => store.db.queryDerivationOutputs(drv).out!);
    return farm.machines.map((mm) => outs.filter((o) => fs.existsSync(path.join(mm.storeBacking, path.basename(o)))).length).join('+');
  };
  b.rows.push(`\n## drover-hook-ssh: ${N_DRVS} trivial derivations over 2 machines (${JOBS_PER_MACHINE} jobs each), against Nix 2.8 builders`);
  b.rows.push('| what | time | per derivation | built on m1+m2 | drover/nix time | target |', '|---|---|---|---|---|---|');
  b.rows.push(`| drover-build + drover-hook-ssh | ${d.seconds.toFixed(2)} s | ${ms(d.seconds / N_DRVS)} | ${spread(droverSet)} | ${(d.seconds / n.seconds).toFixed(2)} | ≤ 0.50 |`);
  b.rows.push(`| nix-store -r --builders (Nix 2.8) | ${n.seconds.toFixed(2)} s | ${ms(n.seconds / N_DRVS)} | ${spread(nixSet)} | | |`);
}

async function main(): Promise<void> {
  log(`scale ${scale}: copy ${COPY_BYTES >> 20} MiB, ${N_DRVS} derivations over 2 machines (${JOBS_PER_MACHINE} jobs each); sections: ${[...SECTIONS].join(', ')}`);
  const farm = await Farm.start({ machines: 2, remoteEnv: { DROVER_SANDBOX: 'none' } });
  const store = new Store({ storeDir: farm.storeDir, stateDir: farm.stateDir });
  const nix = nixEnv(farm);
  // Nix 2.8 takes no port in a builder URI: an ssh config names each machine (NIX_SSHOPTS=-F).
  const sshConfig = path.join(farm.dir, 'nix-ssh-config');
  fs.writeFileSync(sshConfig, farm.machines.map((m) => `Host ${m.name}\n  HostName 127.0.0.1\n  Port ${m.port}\n  HostKeyAlias ${m.name}\n  BatchMode yes\n`).join(''));
  nix.NIX_SSHOPTS = `-F ${sshConfig}`;
  const hook = path.join(BIN_DIR, 'drover-hook-ssh');
  const b: Bench = {
    farm,
    store,
    rows: [],
    nix,
    build: (drvs, env, input) => timed(path.join(BIN_DIR, 'drover-build'), ['--max-jobs', '0', '--build-hook', hook, ...drvs], env, input),
    machinesFile: (ms, name) => farm.machinesFile(ms.map((m) => m.line({ maxJobs: JOBS_PER_MACHINE })), name),
    builders: (ms) => ms.map((m) => `ssh://root@${m.name} ${farm.system} ${farm.userKey} ${JOBS_PER_MACHINE} 1 - - ${m.hostKeyBase64}`).join(' ; '),
  };
  try {
    if (SECTIONS.has('dispatch')) await benchDispatch(b);
    if (SECTIONS.has('copy')) await benchCopy(b);
    if (SECTIONS.has('farm')) await benchFarm(b);
  } finally {
    store.close();
    await farm.close();
  }
  process.stdout.write(b.rows.join('\n') + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: error: ${(e as Error).message}\n`);
  process.exit(1);
});
