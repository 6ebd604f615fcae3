// NAR-hashing, canonicalising and checking many store paths at once: single small files in
// native jobs on libuv's threads, the rest (directories, symlinks, big files) in worker threads.
import fs from 'node:fs';
import os from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { createHash } from 'node:crypto';
import util from 'node:util';
import { loadNative, SHRANK } from './native.js';
import { Hash } from './hash.js';

export interface PathHashResult {
  narHash: Hash;
  narSize: number;
  /** Made canonical in the same pass (`canonicaliseOnceOpen` with the gate open by then). */
  canonicalised: boolean;
}

/** A path that could not be read or canonicalised; the message names it. */
export class PathReadError extends Error {}

/**
 * For the paths the native jobs leave to JavaScript: below this many, a worker thread's
 * start-up (~50–60 ms of CPU, measured) costs more than it saves (walking a small path costs
 * ~20 µs to hash, ~7 µs to canonicalise, ~3 µs to check in JavaScript).
 */
const MIN_PARALLEL = { hash: 2000, canonicalise: 20_000, exists: 30_000 };
/**
 * Paths per message: large enough to amortise messaging, small enough to balance load
 * (hashing costs vary with size; checking and canonicalising cost the same for each path).
 */
const HASH_CHUNK = 128;
const META_CHUNK = 2048;
/** Fewest paths per native job (libuv's threads take the jobs, all queued at once). */
const NATIVE_MIN_CHUNK = 4096;
/** Paths per native hashing job at least: below that one more thread costs more than it saves. */
const NATIVE_MIN_SHARE = 16;

/** Reused by every hash in this thread: file contents are read through it. */
const READ_BUF = Buffer.allocUnsafe(1 << 20);
const ZEROS = Buffer.alloc(8);
const SLASH = Buffer.from('/');
const U64 = Buffer.alloc(8);
const TOKENS = new Map<string, Buffer>();

/** A NAR string token (length, bytes, padding), built once per distinct word. */
function token(s: string): Buffer {
  let t = TOKENS.get(s);
  if (!t) {
    const b = Buffer.from(s);
    t = Buffer.alloc(8 + b.length + ((8 - (b.length % 8)) % 8));
    t.writeUInt32LE(b.length, 0);
    b.copy(t, 8);
    TOKENS.set(s, t);
  }
  return t;
}

/**
 * The NAR hash of a tree, hashed as it is walked (no chunk allocations: this runs for each
 * of 100k small paths), canonicalising metadata on the way when asked, as Nix's
 * canonicalisePathMetaData does before registration: mode 0444 or 0555 (the owner's
 * executable bit decides; directories are 0555), mtime 1. Ownership is left alone: a
 * drover store belongs to the user running it. Equal to `hashPath` (tested).
 */
export function hashAndCanonicalise(root: string, opts: { hash: boolean; canonicalise: boolean }): { hash: Buffer; size: number } {
  const h = opts.hash ? createHash('sha256') : undefined;
  let size = 0;
  const put = (b: Buffer) => {
    h?.update(b);
    size += b.length;
  };
  const str = (b: Buffer) => {
    U64.writeUInt32LE(b.length >>> 0, 0);
    U64.writeUInt32LE(Math.floor(b.length / 2 ** 32), 4);
    put(U64);
    put(b);
    const pad = (8 - (b.length % 8)) % 8;
    if (pad) put(ZEROS.subarray(0, pad));
  };
  // Buffer paths below the root: entry names need not be UTF-8.
  const walk = (p: string | Buffer) => {
    const st = fs.lstatSync(p);
    if (h) put(token('(')), put(token('type'));
    if (st.isSymbolicLink()) {
      if (opts.canonicalise && st.mtimeMs !== 1000) fs.lutimesSync(p, 1, 1);
      if (h) put(token('symlink')), put(token('target')), str(fs.readlinkSync(p, { encoding: 'buffer' }));
    } else if (st.isFile()) {
      if (h) {
        put(token('regular'));
        if (st.mode & 0o100) put(token('executable')), put(token(''));
        put(token('contents'));
        U64.writeUInt32LE(st.size >>> 0, 0);
        U64.writeUInt32LE(Math.floor(st.size / 2 ** 32), 4);
        put(U64);
        const fd = fs.openSync(p, 'r');
        try {
          let left = st.size;
          while (left > 0) {
            const n = fs.readSync(fd, READ_BUF, 0, Math.min(left, READ_BUF.length), null);
            if (n === 0) throw new Error(`'${p.toString()}' shrank while being hashed`);
            put(READ_BUF.subarray(0, n));
            left -= n;
          }
        } finally {
          fs.closeSync(fd);
        }
        const pad = (8 - (st.size % 8)) % 8;
        if (pad) put(ZEROS.subarray(0, pad));
      }
    } else if (st.isDirectory()) {
      if (h) put(token('directory'));
      const names = fs.readdirSync(p, { encoding: 'buffer' }).sort(Buffer.compare);
      for (const name of names) {
        if (h) put(token('entry')), put(token('(')), put(token('name')), str(name), put(token('node'));
        walk(Buffer.concat([typeof p === 'string' ? Buffer.from(p) : p, SLASH, name]));
        if (h) put(token(')'));
      }
    } else {
      throw new Error(`'${p.toString()}' is not a regular file, directory or symlink`);
    }
    if (h) put(token(')'));
    if (opts.canonicalise && !st.isSymbolicLink()) {
      const want = st.isDirectory() || st.mode & 0o100 ? 0o555 : 0o444;
      if ((st.mode & 0o7777) !== want) fs.chmodSync(p, want);
      if (st.mtimeMs !== 1000) fs.utimesSync(p, 1, 1);
    }
  };
  if (typeof root === 'string') {
    const one = singleFile(root, h, opts.canonicalise);
    if (one !== undefined) return { hash: h ? h.digest() : Buffer.alloc(0), size: one };
  }
  if (h) put(token('nix-archive-1'));
  walk(root);
  return { hash: h ? h.digest() : Buffer.alloc(0), size };
}

/** Opened without following a symlink, and without blocking on a FIFO (which the walk then refuses). */
const OPEN_ANY = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY;
/** The NAR of one regular file up to its contents' length: all of it fixed but the executable bit. */
const FILE_HEAD = [false, true].map((x) =>
  Buffer.concat(['nix-archive-1', '(', 'type', 'regular', ...(x ? ['executable', ''] : []), 'contents'].map(token)),
);
const CLOSE = token(')');

/**
 * The common store path, one regular file, hashed and canonicalised through one descriptor:
 * opened first and fstat'ed (one lookup of the path, not one each for lstat, chmod and
 * utimes), made canonical with fchmod/futimes, the NAR's fixed head hashed as one buffer.
 * Returns the NAR size, or undefined when `root` is not a regular file (the walk handles it).
 */
function singleFile(root: string, h: Hash256 | undefined, canonicalise: boolean): number | undefined {
  let fd: number;
  try {
    fd = fs.openSync(root, OPEN_ANY);
  } catch (e) {
    // A symlink (ELOOP) or something that cannot be opened: the walk says what it is.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw e;
    return undefined;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return undefined;
    const head = FILE_HEAD[st.mode & 0o100 ? 1 : 0]!;
    const pad = (8 - (st.size % 8)) % 8;
    if (h) {
      h.update(head);
      U64.writeUInt32LE(st.size >>> 0, 0);
      U64.writeUInt32LE(Math.floor(st.size / 2 ** 32), 4);
      h.update(U64);
      let left = st.size;
      while (left > 0) {
        const n = fs.readSync(fd, READ_BUF, 0, Math.min(left, READ_BUF.length), null);
        if (n === 0) throw new Error(`'${root}' shrank while being hashed`);
        h.update(READ_BUF.subarray(0, n));
        left -= n;
      }
      if (pad) h.update(ZEROS.subarray(0, pad));
      h.update(CLOSE);
    }
    if (canonicalise) {
      const want = st.mode & 0o100 ? 0o555 : 0o444;
      if ((st.mode & 0o7777) !== want) fs.fchmodSync(fd, want);
      if (st.mtimeMs !== 1000) fs.futimesSync(fd, 1, 1);
    }
    return head.length + 8 + st.size + pad + CLOSE.length;
  } finally {
    fs.closeSync(fd);
  }
}

type Hash256 = ReturnType<typeof createHash>;

type Done = [hex: string, size: number, canonicalised: 0 | 1];

/** One path's work in the current thread: returns [hex, size, canonicalised] or an error message. */
function work(p: string, o: Required<PathWork>, gate: Int32Array): Done | string {
  const opts = { hash: o.hash, canonicalise: o.canonicalise || (o.canonicaliseOnceOpen && Atomics.load(gate, 0) === 1) };
  try {
    if (!opts.hash && !opts.canonicalise) {
      // access(2) makes no Stats object (lstat's costs four Dates); it follows a symlink, so
      // only when it fails does lstat decide (a dangling symlink exists all the same).
      try {
        fs.accessSync(p);
      } catch {
        fs.lstatSync(p);
      }
      return ['', 0, 0];
    }
    const { hash, size } = hashAndCanonicalise(p, opts);
    return [hash.toString('hex'), size, opts.canonicalise ? 1 : 0];
  } catch (e) {
    return failure(p, (e as NodeJS.ErrnoException).code, (e as Error).message);
  }
}

/** failure() for a native job's -errno, in the words Node's fs would use (`EACCES: permission denied`). */
function systemFailure(p: string, errno: number): string {
  const [code, text] = util.getSystemErrorMap().get(errno) ?? [`errno ${-errno}`, 'unknown error'];
  return failure(p, code, `${code}: ${text}`);
}

/** What PathReadError says of `p`, from the error's code (and message). */
function failure(p: string, code: string | undefined, message = code): string {
  return code === 'ENOENT' ? `'${p}' does not exist on disk` : `cannot read '${p}': ${message}`;
}

/** What to do to each path: hash its NAR (sha256), canonicalise it, or neither (check it exists). */
export interface PathWork {
  hash?: boolean;
  canonicalise?: boolean;
  /**
   * Canonicalise too each path reached once the pool's gate is open (`openGate`): a hashing
   * pass then does the canonicalising of all but the paths it reached before, which saves a
   * second walk of them (register-validity opens the gate once its checks have passed).
   */
  canonicaliseOnceOpen?: boolean;
}

/**
 * Canonicalises and/or NAR-hashes every path (sha256), in parallel when there are many;
 * with neither, only checks that each exists. Results are in the order of `paths`; an
 * unreadable or missing path throws PathReadError.
 */
export async function hashPaths(paths: readonly string[], opts: PathWork & { threads?: number } = {}): Promise<(PathHashResult | undefined)[]> {
  const pool = new HashPool(opts.threads);
  try {
    return await pool.run(paths, opts);
  } finally {
    await pool.close();
  }
}

/**
 * Worker threads for several passes over the same paths (register-validity reads, then
 * canonicalises): started on the first pass that is worth them, kept for the next.
 * Chunks are queued ahead in every thread, so the threads keep working while the main
 * thread is busy with something else.
 */
export class HashPool {
  private workers: Worker[] = [];
  private readonly threads: number;
  private readonly minPaths: number | undefined;
  /** `minPaths` overrides the batch size from which threads start (tests use 0). */
  /** Open (1) once canonicalising is allowed: read by every thread as it reaches each path. */
  private readonly gate = new Int32Array(new SharedArrayBuffer(4));
  /** Settles when the threads' current pass is over (see inThreads). */
  private threadsTurn: Promise<void> = Promise.resolve();
  /** Closed: passes still waiting for their turn are refused, and no thread is started. */
  private closed = false;
  constructor(threads?: number, opts: { minPaths?: number } = {}) {
    this.threads = threads ?? Math.min(os.availableParallelism(), 8);
    this.minPaths = opts.minPaths;
  }

  /** Lets `canonicaliseOnceOpen` passes canonicalise from now on (they may be running). */
  openGate(): void {
    Atomics.store(this.gate, 0, 1);
  }

  async run(paths: readonly string[], opts: PathWork = {}): Promise<(PathHashResult | undefined)[]> {
    const o = { hash: opts.hash ?? true, canonicalise: opts.canonicalise ?? false, canonicaliseOnceOpen: opts.canonicaliseOnceOpen ?? false };
    const raw = o.hash ? await this.hashNatively(paths, o) : await this.natively(paths, o);
    return raw.map((r) => {
      if (typeof r === 'string') throw new PathReadError(r);
      return o.hash ? { narHash: new Hash('sha256', undefined, r[0]), narSize: r[1], canonicalised: r[2] === 1 } : undefined;
    });
  }

  /**
   * Checking existence and canonicalising single files, in native jobs on libuv's threads
   * (path-meta.c: the system calls without Node's cost around each), a job per core. This
   * thread writes rows meanwhile; these jobs are mostly kernel work, and leaving it a core of
   * its own made the canonicalising pass, not the rows, the longer of the two.
   */
  private natively(paths: readonly string[], o: Required<PathWork>): Promise<(Done | string)[]> {
    const native = loadNative();
    return this.viaNative(paths, o, this.threads, async (batch, n) => {
      const results = new Int32Array(n);
      await native.pathMeta(o.canonicalise ? 1 : 0, batch, results);
      return (i, p) => (results[i] === 0 ? ['', 0, o.canonicalise ? 1 : 0] : results[i] === 1 ? undefined : systemFailure(p, results[i]!));
    });
  }

  /**
   * Hashing (and canonicalising, when asked or once the gate is open) single files of up to
   * 1 MiB in native jobs (hash-files.c), a job per core over one batch that they share out
   * path by path as they go (sizes differ): this thread only waits for the hashes.
   */
  private hashNatively(paths: readonly string[], o: Required<PathWork>): Promise<(Done | string)[]> {
    const native = loadNative();
    return this.viaNative(paths, o, 1, async (batch, n, first) => {
      const starts = new Uint32Array(n);
      for (let i = 1, at = 0; i < n; i++) starts[i] = at += Buffer.byteLength(paths[first + i - 1]!) + 1;
      const next = new Int32Array(1);
      const status = new Int32Array(2 * n);
      const sizes = new Float64Array(n);
      const hashes = Buffer.alloc(32 * n);
      const gate = o.canonicaliseOnceOpen ? this.gate : null;
      const jobs = Math.max(1, Math.min(this.threads, Math.ceil(n / NATIVE_MIN_SHARE)));
      // Every job is waited for, failed or not: one that failed must not leave the others
      // canonicalising files after the command has given up.
      const settled = await Promise.allSettled(Array.from({ length: jobs }, () => native.hashFiles(batch, starts, next, status, sizes, hashes, o.canonicalise, gate)));
      for (const r of settled) if (r.status === 'rejected') throw r.reason;
      return (i, p) => {
        const r = status[2 * i]!;
        if (r === 0) return [hashes.toString('hex', 32 * i, 32 * i + 32), sizes[i]!, status[2 * i + 1] === 1 ? 1 : 0];
        if (r === 1) return undefined;
        return r === SHRANK ? failure(p, 'ESHRANK', `'${p}' shrank while being hashed`) : systemFailure(p, r);
      };
    });
  }

  /**
   * Runs `job` over the paths cut into at most `jobs` batches, all started at once (a batch
   * may run several native jobs itself, as hashing does). A batch answers for each of its
   * paths: a result, or undefined for a path that is not one small regular file (a
   * directory, a symlink, a big file), which then goes through the threads' walk.
   */
  private async viaNative(
    paths: readonly string[],
    o: Required<PathWork>,
    jobs: number,
    job: (batch: Buffer, n: number, first: number) => Promise<(i: number, p: string) => Done | string | undefined>,
  ): Promise<(Done | string)[]> {
    // A path holding a zero byte would shift every path after it: Node's fs refuses it by name.
    if (paths.some((p) => p.includes('\0'))) return this.inThreads(paths, o);
    const raw: (Done | string)[] = new Array(paths.length);
    const walk: number[] = [];
    const chunk = Math.max(NATIVE_MIN_CHUNK, Math.ceil(paths.length / Math.max(1, jobs)));
    const running: Promise<void>[] = [];
    for (let start = 0; start < paths.length; start += chunk) {
      const end = Math.min(start + chunk, paths.length);
      // The paths as the C side reads them: each ended by a zero byte.
      const batch = Buffer.from(`${paths.slice(start, end).join('\0')}\0`);
      running.push(
        job(batch, end - start, start).then((answer) => {
          for (let i = 0; i < end - start; i++) {
            const a = answer(i, paths[start + i]!);
            if (a === undefined) walk.push(start + i);
            else raw[start + i] = a;
          }
        }),
      );
    }
    await Promise.all(running);
    if (walk.length > 0) {
      const walked = await this.inThreads(walk.map((i) => paths[i]!), o);
      walk.forEach((at, k) => (raw[at] = walked[k]!));
    }
    return raw;
  }

  /** Each path's work in this pool's worker threads (or in this thread, when there are few). */
  private async inThreads(paths: readonly string[], o: Required<PathWork>): Promise<(Done | string)[]> {
    const raw: (Done | string)[] = new Array(paths.length);
    const minParallel = this.minPaths ?? (o.hash ? MIN_PARALLEL.hash : o.canonicalise ? MIN_PARALLEL.canonicalise : MIN_PARALLEL.exists);
    // Threads already running cost nothing more to use.
    if (this.threads <= 1 || (paths.length < minParallel && this.workers.length === 0)) {
      for (let i = 0; i < paths.length; i++) raw[i] = work(paths[i]!, o, this.gate);
    } else {
      // The threads answer one pass at a time (their replies carry no pass): runs that
      // overlap take turns here.
      const before = this.threadsTurn;
      let release!: () => void;
      this.threadsTurn = new Promise<void>((r) => (release = r));
      await before;
      try {
        await this.feedAll(paths, o, raw);
      } finally {
        release();
      }
    }
    return raw;
  }

  /** One pass over `paths` in the worker threads. */
  private async feedAll(paths: readonly string[], o: Required<PathWork>, raw: (Done | string)[]): Promise<void> {
    if (this.closed) throw new Error('the hash pool is closed');
    // By name, not import.meta.url: in the CLI's bundle that would be the whole CLI.
    while (this.workers.length < this.threads) this.workers.push(new Worker(new URL('./hash-pool.js', import.meta.url), { workerData: { droverHashPool: true, gate: this.gate } }));
    const n = paths.length;
    const threads = this.workers.length;
    // A short pass (export hashes a window of paths at a time) is cut finer, so every thread gets some.
    const size = o.hash ? Math.max(1, Math.min(HASH_CHUNK, Math.ceil(n / (threads * 4)))) : META_CHUNK;
    let next = 0;
    // Hashing costs vary with file size: threads take the next chunk as they finish one,
    // each holding at most half its share at a time, or the first thread would queue them
    // all (AHEAD of them) before the second asked, and do the whole pass alone.
    // Checking and canonicalising cost the same for each path: each thread is given every
    // threads-th chunk up front.
    const ahead = o.hash ? Math.min(AHEAD, Math.max(1, Math.floor(Math.ceil(n / size) / threads / 2))) : AHEAD;
    const takeFor = (k: number): (() => [number, number] | undefined) => {
      if (o.hash) return () => (next < n ? [next, (next = Math.min(next + size, n))] : undefined);
      let c = k;
      return () => {
        const start = c * size;
        c += threads;
        return start < n ? [start, Math.min(start + size, n)] : undefined;
      };
    };
    // Every thread's part ends (answered, or its thread gone) before the next pass may start.
    const ends = await Promise.allSettled(this.workers.map((w, k) => this.feed(w, paths, o, raw, takeFor(k), ahead)));
    const failed = ends.find((e) => e.status === 'rejected');
    if (failed) {
      // A thread died or was stopped: the pool starts the next pass with fresh threads.
      const ws = this.workers;
      this.workers = [];
      await Promise.all(ws.map((w) => w.terminate()));
      throw (failed as PromiseRejectedResult).reason;
    }
  }

  /** Keeps one thread busy with the chunks `take` gives it until there are none left. */
  private feed(w: Worker, paths: readonly string[], o: Required<PathWork>, raw: (Done | string)[], take: () => [number, number] | undefined, ahead: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // Start offsets of the chunks this thread has in flight, answered in order.
      const inFlight: number[] = [];
      let more = true;
      const send = () => {
        while (more && inFlight.length < ahead) {
          const chunk = take();
          if (!chunk) more = false;
          else {
            inFlight.push(chunk[0]);
            w.postMessage({ paths: paths.slice(chunk[0], chunk[1]), ...o });
          }
        }
        if (inFlight.length === 0) done(undefined);
      };
      const onMessage = (results: (Done | string)[]) => {
        const start = inFlight.shift()!;
        for (let i = 0; i < results.length; i++) raw[start + i] = results[i]!;
        send();
      };
      const onError = (e: Error) => done(e);
      const onExit = (code: number) => done(new Error(`hashing thread exited with ${code}`));
      const done = (e: Error | undefined) => {
        w.off('message', onMessage).off('error', onError).off('exit', onExit);
        if (e) reject(e);
        else resolve();
      };
      w.on('message', onMessage).on('error', onError).on('exit', onExit);
      send();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const ws = this.workers;
    this.workers = [];
    await Promise.all(ws.map((w) => w.terminate()));
  }
}

/** Chunks queued per thread at once. */
const AHEAD = 64;

if (!isMainThread && (workerData as { droverHashPool?: boolean } | null)?.droverHashPool) {
  const gate = (workerData as { gate: Int32Array }).gate;
  parentPort!.on('message', (m: { paths: string[] } & Required<PathWork>) => {
    parentPort!.postMessage(m.paths.map((p) => work(p, m, gate)));
  });
}
