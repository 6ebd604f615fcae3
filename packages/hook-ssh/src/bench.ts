// Benchmark of drover-hook-ssh against real sshd machines: dispatch overhead, copy throughput, and 200 builds against Nix 2.8's remote builds.
//
// Everything runs in one farm (sshd per machine on loopback, own store behind the same
// store dir), in the same run, so the ratios compare like with like on this machine.
// DROVER_BENCH_SCALE (default 1) scales the copy size (200 MB) and the number of builds (200).
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
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

async function main(): Promise<void> {
  log(`scale ${scale}: copy ${COPY_BYTES >> 20} MiB, ${N_DRVS} derivations over 2 machines (${JOBS_PER_MACHINE} jobs each)`);
  const farm = await Farm.start({ machines: 2, remoteEnv: { DROVER_SANDBOX: 'none' } });
  const store = new Store({ storeDir: farm.storeDir, stateDir: farm.stateDir });
  const rows: string[] = [];
  try {
    const [m1, m2] = farm.machines as [Farm['machines'][0], Farm['machines'][0]];
    const machines = farm.machinesFile([m1.line({ maxJobs: JOBS_PER_MACHINE }), m2.line({ maxJobs: JOBS_PER_MACHINE })]);
    const one = farm.machinesFile([m1.line({ maxJobs: JOBS_PER_MACHINE })], 'one-machine');
    const env = farm.env({ DROVER_MACHINES: machines });
    const hook = path.join(BIN_DIR, 'drover-hook-ssh');
    const build = path.join(BIN_DIR, 'drover-build');
    const remoteArgs = ['--max-jobs', '0', '--build-hook', hook];
    const nix = nixEnv(farm);
    // Nix 2.8 takes no port in a builder URI: an ssh config names each machine (NIX_SSHOPTS=-F).
    const sshConfig = path.join(farm.dir, 'nix-ssh-config');
    fs.writeFileSync(sshConfig, farm.machines.map((mm) => `Host ${mm.name}\n  HostName 127.0.0.1\n  Port ${mm.port}\n  HostKeyAlias ${mm.name}\n  BatchMode yes\n`).join(''));
    nix.NIX_SSHOPTS = `-F ${sshConfig}`;
    const builders = (ms: Farm['machines']) =>
      ms.map((mm) => `ssh://root@${mm.name} ${farm.system} ${farm.userKey} ${JOBS_PER_MACHINE} 1 - - ${mm.hostKeyBase64}`).join(' ; ');

    // 1. Dispatch overhead of one trivial remote build.
    log('dispatch: one trivial derivation at a time');
    const shared: number[] = [];
    const fresh: number[] = [];
    const local: number[] = [];
    const nixOne: number[] = [];
    const oneEnv = farm.env({ DROVER_MACHINES: one });
    // Warm the shared master connection first: its set-up is what "shared" saves.
    await timed(build, [...remoteArgs, ...(await trivialDrvs(store, farm.system, 'warm', 1))], oneEnv);
    for (let i = 0; i < DISPATCH_RUNS; i++) {
      const [a, b, c, d] = await Promise.all(['shared', 'fresh', 'local', 'nix'].map((p) => trivialDrvs(store, farm.system, `dispatch-${p}-${i}`, 1)));
      shared.push((await timed(build, [...remoteArgs, ...a!], oneEnv)).seconds);
      fresh.push((await timed(build, [...remoteArgs, ...b!], { ...oneEnv, DROVER_HOOK_SSH_SHARE: '0' })).seconds);
      local.push((await timed(build, ['--max-jobs', '1', '--sandbox', 'none', ...c!], farm.env())).seconds);
      nixOne.push((await timed('nix-store', ['-r', ...d!, '--max-jobs', '0', '--option', 'builders', builders([m1])], nix)).seconds);
    }
    const ms = (s: number) => `${(s * 1000).toFixed(0)} ms`;
    rows.push('\n## drover-hook-ssh: dispatch of one trivial remote build (median of ' + DISPATCH_RUNS + ')');
    rows.push('| what | time | overhead over a local build |', '|---|---|---|');
    rows.push(`| drover-build, local build (no hook) | ${ms(median(local))} | — |`);
    rows.push(`| drover-build + hook, shared connection | ${ms(median(shared))} | ${ms(median(shared) - median(local))} |`);
    rows.push(`| drover-build + hook, fresh connection each time | ${ms(median(fresh))} | ${ms(median(fresh) - median(local))} |`);
    rows.push(`| nix-store -r with builders (Nix 2.8) | ${ms(median(nixOne))} | — |`);

    // 2. Closure copy throughput against raw ssh.
    log(`copy: ${COPY_BYTES >> 20} MiB of inputs to one machine`);
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
    const [copyDrv] = await trivialDrvs(store, farm.system, 'copy', 1, blobs.sort());
    const copyRun = await timed(build, [...remoteArgs, copyDrv!], { ...oneEnv, DROVER_HOOK_SSH_DEBUG: '1' });
    const up = /uploaded (\d+) paths, (\d+) bytes: (\d+) ms/.exec(copyRun.stderr);
    if (!up) throw new Error(`no upload figures in the hook's output:\n${copyRun.stderr}`);
    const upBytes = Number(up[2]);
    const upSeconds = Number(up[3]) / 1000;
    // The same bytes through the same shared connection into `cat > /dev/null`.
    const streamFile = path.join(farm.dir, 'stream');
    const ws = fs.createWriteStream(streamFile);
    await exportPaths(store, [...blobs, copyDrv!], (c) => {
      if (!ws.write(c)) return new Promise<void>((r) => ws.once('drain', () => r()));
    });
    await new Promise<void>((r) => ws.end(() => r()));
    const m = parseMachines(m1.line({ maxJobs: 1 }), one)[0]!;
    const raw = spawnSync('sh', ['-c', `exec ssh "$@" 'cat > /dev/null' < ${streamFile}`, 'sh', ...sshArgs(farm.stateDir, m, hookSettings(farm.env()))], { env: farm.env() });
    const t0 = process.hrtime.bigint();
    const raw2 = spawnSync('sh', ['-c', `exec ssh "$@" 'cat > /dev/null' < ${streamFile}`, 'sh', ...sshArgs(farm.stateDir, m, hookSettings(farm.env()))], { env: farm.env() });
    const rawSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (raw.status !== 0 || raw2.status !== 0) throw new Error(`raw ssh copy failed: ${raw2.stderr}`);
    const streamBytes = fs.statSync(streamFile).size;
    fs.rmSync(streamFile);
    const mbps = (b: number, s: number) => `${(b / 1048576 / s).toFixed(0)} MiB/s`;
    rows.push('\n## drover-hook-ssh: closure copy to a machine (export | ssh | import, registered) against raw `ssh host cat >/dev/null`');
    rows.push('| what | bytes | time | throughput | hook/raw throughput | target |', '|---|---|---|---|---|---|');
    rows.push(`| raw ssh cat >/dev/null (shared connection) | ${streamBytes} | ${rawSeconds.toFixed(2)} s | ${mbps(streamBytes, rawSeconds)} | — | |`);
    rows.push(
      `| hook upload (${up[1]} paths) | ${upBytes} | ${upSeconds.toFixed(2)} s | ${mbps(upBytes, upSeconds)} | ${(upBytes / upSeconds / (streamBytes / rawSeconds)).toFixed(2)} | ≥ 0.80 |`,
    );

    // 3. N trivial derivations over two machines: drover against Nix 2.8's remote builds.
    log(`farm: ${N_DRVS} trivial derivations over 2 machines, drover then Nix`);
    const droverSet = await trivialDrvs(store, farm.system, 'farm-drover', N_DRVS);
    const nixSet = await trivialDrvs(store, farm.system, 'farm-nix', N_DRVS);
    const d = await timed(build, [...remoteArgs, '-'], env, droverSet.join('\n') + '\n');
    const n = await timed('nix-store', ['-r', ...nixSet, '--max-jobs', '0', '--option', 'builders', builders(farm.machines)], nix);
    const spread = (set: string[]) => {
      const outs = set.map((drv) => store.db.queryDerivationOutputs(drv).out!);
      return farm.machines.map((mm) => outs.filter((o) => fs.existsSync(path.join(mm.storeBacking, path.basename(o)))).length).join('+');
    };
    rows.push(`\n## drover-hook-ssh: ${N_DRVS} trivial derivations over 2 machines (${JOBS_PER_MACHINE} jobs each), against Nix 2.8 builders`);
    rows.push('| what | time | per derivation | built on m1+m2 | drover/nix time | target |', '|---|---|---|---|---|---|');
    rows.push(`| drover-build + drover-hook-ssh | ${d.seconds.toFixed(2)} s | ${ms(d.seconds / N_DRVS)} | ${spread(droverSet)} | ${(d.seconds / n.seconds).toFixed(2)} | ≤ 0.50 |`);
    rows.push(`| nix-store -r --builders (Nix 2.8) | ${n.seconds.toFixed(2)} s | ${ms(n.seconds / N_DRVS)} | ${spread(nixSet)} | | |`);
  } finally {
    store.close();
    await farm.close();
  }
  process.stdout.write(rows.join('\n') + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: error: ${(e as Error).message}\n`);
  process.exit(1);
});
