// The remote end of one build session (see session-protocol.ts), run by `serve` over ssh stdio or by the agent per connection.
//
// It says which inputs are missing, imports them, builds the derivation with drover's
// scheduler in this process, and streams the outputs back. The end of its input means the
// hook or its connection is gone: the build is interrupted and its builders are killed.
import type { Writable } from 'node:stream';
import { Store, exportPaths, importPaths, type Hash, type StoreConfig } from '@drover/store';
import { GuardedStore } from './remote-ops.js';
import { Scheduler, resolveBuildOptions } from '@drover/worker';
import { FrameReader, FrameWriter, SESSION_VERSION, parseHeader, parseNarHashes } from './session-protocol.js';
import { PrefixStripper } from './log-prefix.js';

export interface SessionIo {
  input: AsyncIterable<Buffer | string>;
  output: Writable;
  config: StoreConfig;
  env: NodeJS.ProcessEnv;
  version: string;
  /** Registers a function that stops the session from outside (a signal); returns its undo. */
  onStop?: (stop: () => void) => () => void;
}

/** Runs one session; resolves with 0 when it ran to its end, 1 when it was stopped or refused. */
export async function runSession(io: SessionIo): Promise<number> {
  const out = new FrameWriter(io.output);
  const reader = new FrameReader(io.input, 'the session from the hook');
  await out.send('H', JSON.stringify({ v: SESSION_VERSION, storeDir: io.config.storeDir, version: io.version, checksNarHashes: true }));
  const first = await reader.next();
  // The hook may hang up after the hello: it only wanted to know we are here.
  if (!first) return 0;
  const store = new Store(io.config);
  try {
    if (first.type !== 'M') throw new Error(`expected the session header, got a ${first.type} frame`);
    const header = parseHeader(JSON.parse(first.payload.toString('utf8')) as Record<string, unknown>);
    if (header.storeDir !== io.config.storeDir) {
      await out.message({ error: `this machine's store dir is '${io.config.storeDir}', not '${header.storeDir}'` });
      return 1;
    }
    const missing = header.inputs.filter((p) => !store.db.isValid(p));
    await out.message({ missing });
    if (missing.length > 0) {
      try {
        const what = 'the export stream from the hook';
        let target: Store = store;
        if (header.narHashes) {
          const f = await reader.next();
          if (!f || f.type !== 'M') throw new Error(`expected the NAR hashes of the missing paths, got ${f ? `a ${f.type} frame` : 'the end of the session'}`);
          target = hashCheckingStore(store, parseNarHashes(JSON.parse(f.payload.toString('utf8')) as Record<string, unknown>, missing, 'the session from the hook'), what);
        }
        let got: string[];
        try {
          got = await importPaths(target, reader.data(), { what });
        } finally {
          if (target !== store) target.close();
        }
        const asked = new Set(missing);
        const stray = got.find((p) => !asked.has(p));
        if (stray) throw new Error(`the export stream from the hook holds '${stray}', which was not asked for`);
        await out.message({ imported: got.length });
      } catch (e) {
        await out.message({ error: (e as Error).message });
        return 1;
      }
    }
    const name = header.drv.slice(header.drv.lastIndexOf('/') + 34, -4);
    const strip = new PrefixStripper(`${name}> `);
    const log = (s: string) => {
      try {
        void out.send('L', strip.push(Buffer.from(s)));
      } catch {
        /* the hook is gone; the stop below ends the build */
      }
    };
    const opts = resolveBuildOptions({ maxJobs: 1, maxSilentTime: header.maxSilentTime, printBuildLogs: true, buildHook: '' }, io.env, log);
    const scheduler = new Scheduler(store, opts);
    let stopped = false;
    const stop = () => {
      stopped = true;
      scheduler.interrupt();
    };
    // Nothing more comes from the hook: the end of its stream is its "stop".
    void reader.untilEnd().then(stop, stop);
    const undo = io.onStop?.(stop);
    let result;
    try {
      result = await scheduler.run([header.drv]);
    } finally {
      undo?.();
    }
    if (stopped) return 1;
    await out.message({ status: result.exitCode });
    if (result.exitCode === 0) {
      await exportPaths(store, header.outputs, (c) => out.sendData(c));
      await out.endData();
    }
    return 0;
  } catch (e) {
    try {
      await out.message({ error: (e as Error).message });
    } catch {
      /* the hook is gone */
    }
    return 1;
  } finally {
    store.close();
  }
}

/**
 * The store an import goes through when the hook sent the NAR hashes its DB holds: a NAR
 * whose hash differs (a path that rotted on the hook's disk, a stream damaged on the way) is
 * refused before anything is registered, as the hook's own export would have refused it.
 */
function hashCheckingStore(base: Store, expected: ReadonlyMap<string, Hash>, what: string): GuardedStore {
  return new GuardedStore(base, (infos) => {
    for (const info of infos) {
      const want = expected.get(info.path);
      if (want && want.equals(info.narHash)) continue;
      return new Error(
        want
          ? `${what}: the contents of '${info.path}' hash to '${info.narHash.toString('base32', true)}', not '${want.toString('base32', true)}' as the hook's store says; nothing was registered`
          : `${what}: holds '${info.path}', which the hook sent no hash for; nothing was registered`,
      );
    }
    return undefined;
  });
}
