// `drover-hook-ssh serve`: the remote end of one remote build, in one process (like `nix-store --serve`).
//
// It answers which inputs are missing, imports them, builds the derivation with drover's
// scheduler in-process, and streams the outputs back: one process start per remote build
// instead of one per step. End of file on stdin at any point means the hook or its
// connection is gone: the build is interrupted (its builders killed) and serve exits.
import type { Writable } from 'node:stream';
import { Store, exportPaths, importPaths, resolveConfig } from '@drover/store';
import { Scheduler, resolveBuildOptions } from '@drover/worker';
import { SERVE_VERSION, StreamReader, parseHeader } from './serve-protocol.js';
import { PrefixStripper } from './log-prefix.js';

export interface ServeIo {
  input: AsyncIterable<Buffer | string>;
  output: Writable;
  /** The build log (stderr). */
  log: (b: Buffer | string) => void;
  env: NodeJS.ProcessEnv;
  version: string;
}

function write(out: Writable, b: Buffer | string): Promise<void> | void {
  if (!out.write(b)) return new Promise<void>((resolve) => out.once('drain', () => resolve()));
}

function send(out: Writable, msg: Record<string, unknown>): Promise<void> | void {
  return write(out, JSON.stringify(msg) + '\n');
}

/** Runs one serve session; returns serve's exit status. */
export async function serve(io: ServeIo): Promise<number> {
  const reader = new StreamReader(io.input);
  const header = parseHeader(await reader.json('serve header from the hook'));
  const cfg = resolveConfig({});
  const store = new Store(cfg);
  try {
    if (header.storeDir !== cfg.storeDir) {
      await send(io.output, { v: SERVE_VERSION, storeDir: cfg.storeDir, version: io.version, missing: [] });
      return 1;
    }
    const missing = header.inputs.filter((p) => !store.db.isValid(p));
    await send(io.output, { v: SERVE_VERSION, storeDir: cfg.storeDir, version: io.version, missing });
    if (missing.length > 0) {
      try {
        const got = await importPaths(store, reader.frames('the export stream from the hook'), { what: 'the export stream from the hook' });
        const stray = got.filter((p) => !missing.includes(p));
        if (stray.length) throw new Error(`the export stream from the hook holds '${stray[0]}', which was not asked for`);
        await send(io.output, { imported: got.length });
      } catch (e) {
        await send(io.output, { error: (e as Error).message });
        return 1;
      }
    }

    const name = header.drv.slice(header.drv.lastIndexOf('/') + 34, -4);
    const strip = new PrefixStripper(`${name}> `);
    const opts = resolveBuildOptions(
      { maxJobs: 1, maxSilentTime: header.maxSilentTime, printBuildLogs: true, buildHook: '' },
      io.env,
      (s) => io.log(strip.push(Buffer.from(s))),
    );
    const scheduler = new Scheduler(store, opts);
    let gone = false;
    const stop = () => {
      gone = true;
      scheduler.interrupt();
    };
    // Nothing more comes on stdin: its end is the hook's "stop". So is a signal.
    void reader.untilEnd().then(stop, stop);
    process.on('SIGTERM', stop);
    process.on('SIGHUP', stop);
    let result;
    try {
      result = await scheduler.run([header.drv]);
    } finally {
      process.off('SIGTERM', stop);
      process.off('SIGHUP', stop);
    }
    if (gone) return 1;
    await send(io.output, { status: result.exitCode });
    if (result.exitCode !== 0) return 0;
    await exportPaths(store, header.outputs, (c) => write(io.output, c));
    return 0;
  } finally {
    store.close();
  }
}
