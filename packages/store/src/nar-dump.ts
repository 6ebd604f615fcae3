// Writing a NAR to a file descriptor with two readers: the main thread walks the tree, writes,
// and reads file contents whenever the output would otherwise wait; a worker thread reads ahead.
import fs from 'node:fs';
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { DroverError, NarFormatError } from './errors.js';
import { narOps } from './nar-walk.js';
import { CTL, SLOT, makeShared, readJob, type JobError } from './nar-dump-shared.js';

type PathLike = string | Buffer;

/** Job table slots: jobs walked but not yet written out. */
const JOBS = 4096;
/** A file's contents are read in jobs of at most this, so two readers share big files too. */
const JOB_MAX = 1 << 20;
/** The worker's ring (a power of two, see CTL.TAIL) and the main thread's. */
const RING = 8 << 20;
const MAIN_RING = 4 << 20;
/** The path arena; a path is at most PATH_MAX (lstat refuses longer ones before we get here). */
const PATHS = 1 << 20;
const PATH_MAX = 4096;
/** How far the walk runs ahead of the readers: unclaimed bytes, unclaimed jobs, queued steps. */
const AHEAD_BYTES = 6 << 20;
const AHEAD_JOBS = 512;
const AHEAD_OPS = 8192;
/** Output is written with writev once this much is queued (IOV_MAX is 1024). */
const FLUSH_BYTES = 2 << 20;
const MAX_IOV = 1000;

export interface DumpOptions {
  /**
   * Start the reader thread once the walk has queued this much work (bytes, plus 16 KiB per
   * file for its system calls); below it a thread costs more than it saves. Default 4 MiB.
   */
  threadAfter?: number;
  /** The main thread reads too whenever the output would wait (default); false leaves all reads to the thread. */
  readOnMain?: boolean;
}

/**
 * Writes the NAR of `root` to `fd` with blocking writes and returns its size. Memory is
 * bounded by the rings and the walk's look-ahead, whatever the size of the tree.
 */
export async function dumpNarToFd(root: PathLike, fd: number, opts: DumpOptions = {}): Promise<number> {
  const threadAfter = opts.threadAfter ?? 4 << 20;
  const readOnMain = opts.readOnMain ?? true;
  const sh = makeShared(JOBS, PATHS);
  const { ctl, state, slots, nums } = sh;
  const pathBytes = Buffer.from(sh.paths.buffer);
  let ringBytes: Buffer = Buffer.alloc(0);
  const mainRing = Buffer.allocUnsafeSlow(MAIN_RING);
  // Per slot, known to the main thread only.
  const files: PathLike[] = new Array(JOBS);
  const mine = new Uint8Array(JOBS);
  const mainAt = new Int32Array(JOBS);
  const mainEnd = new Float64Array(JOBS);
  const pathEnd = new Float64Array(JOBS);
  const before = new Float64Array(JOBS);

  const walk = narOps(root);
  let walkDone = false;
  /** The NAR in order: token buffers and job numbers. */
  let q: (Buffer | number)[] = [];
  let qHead = 0;
  let published = 0;
  let pubBytes = 0;
  let consumed = 0;
  // Cumulative byte counts: what was ever allocated (head) and freed (tail).
  let pathHead = 0;
  let pathTail = 0;
  let mainHead = 0;
  let mainTail = 0;
  let mainOut = 0;
  let workerOut = 0;
  /** The file being cut into jobs. */
  let cur: { file: PathLike; start: number; end: number; at: number; len: number; size: number; pos: number } | undefined;
  let iov: Buffer[] = [];
  let iovBytes = 0;
  let total = 0;
  let worker: Worker | undefined;
  let port: MessagePort | undefined;
  let failure: Error | undefined;

  const startWorker = () => {
    const ring = new Uint8Array(new SharedArrayBuffer(RING));
    ringBytes = Buffer.from(ring.buffer);
    const channel = new MessageChannel();
    port = channel.port1;
    worker = new Worker(new URL('./nar-dump-worker.js', import.meta.url), {
      workerData: { ...sh, ring, port: channel.port2 },
      transferList: [channel.port2],
    });
    worker.on('error', (e) => (failure ??= e));
    worker.on('exit', (code) => {
      if (code !== 0) failure ??= new DroverError(`cannot archive '${root.toString()}': reader thread exited with code ${code}`, 1);
    });
    // The thread leaves by itself once told to stop; it must not keep the process alive.
    worker.unref();
  };

  /** A read failure as drover reports it: the tree changed (bad input, 2) or I/O failed (1). */
  const fail = (e: JobError): Error =>
    e.name === 'NarFormatError' ? new NarFormatError(e.message) : new DroverError(`cannot archive '${root.toString()}': ${e.message}`, 1);

  const hasRoom = () => published - consumed < JOBS && PATHS - (pathHead - pathTail) >= 2 * PATH_MAX && q.length - qHead < AHEAD_OPS;
  const wantMore = () => {
    const next = Atomics.load(ctl, CTL.NEXT);
    return published - next < AHEAD_JOBS && (next >= published || pubBytes - before[next % JOBS]! < AHEAD_BYTES);
  };

  /** One step of the walk: a token buffer, a file's path, or the next job of a file. False at the end. */
  const step = (): boolean => {
    if (cur) {
      const j = published;
      const s = j % JOBS;
      const len = Math.min(JOB_MAX, cur.size - cur.pos);
      slots[s * SLOT.SIZE + SLOT.PATH_AT] = cur.at;
      slots[s * SLOT.SIZE + SLOT.PATH_LEN] = cur.len;
      nums[s * 2] = cur.pos;
      nums[s * 2 + 1] = len;
      files[s] = cur.file;
      mine[s] = 0;
      before[s] = pubBytes;
      cur.pos += len;
      pubBytes += len;
      // The path stays in the arena until the file's last job is written out.
      pathEnd[s] = cur.pos < cur.size ? cur.start : cur.end;
      if (cur.pos >= cur.size) cur = undefined;
      q.push(j);
      Atomics.store(ctl, CTL.PUBLISHED, ++published);
      Atomics.notify(ctl, CTL.PUBLISHED);
      return true;
    }
    if (walkDone) return false;
    const r = walk.next();
    if (r.done) {
      walkDone = true;
      return false;
    }
    const op = r.value;
    if (Buffer.isBuffer(op)) q.push(op);
    else if (op.size > 0) {
      const f = op.file;
      const n = typeof f === 'string' ? Buffer.byteLength(f) : f.length;
      if (n > PATH_MAX) throw new NarFormatError(`cannot archive '${f.toString()}': path longer than ${PATH_MAX} bytes`);
      let at = pathHead % PATHS;
      if (at + n > PATHS) {
        pathHead += PATHS - at;
        at = 0;
      }
      if (typeof f === 'string') pathBytes.write(f, at, n);
      else pathBytes.set(f, at);
      const start = pathHead;
      pathHead += n;
      cur = { file: f, start, end: pathHead, at, len: n, size: op.size, pos: 0 };
      if (!worker && pubBytes + published * (16 << 10) >= threadAfter) startWorker();
    }
    return true;
  };

  const flush = () => {
    if (iov.length > 0) {
      writevAllSync(fd, iov);
      total += iovBytes;
      iov = [];
      iovBytes = 0;
    }
    mainTail = mainOut;
    if (worker) {
      Atomics.store(ctl, CTL.TAIL, workerOut | 0);
      Atomics.notify(ctl, CTL.TAIL);
    }
  };
  const emit = (b: Buffer) => {
    iov.push(b);
    iovBytes += b.length;
    if (iov.length >= MAX_IOV || iovBytes >= FLUSH_BYTES) flush();
  };
  /** Queues `len` bytes of `ring` from `at`, in two pieces if they wrap. */
  const emitRing = (ring: Buffer, at: number, len: number) => {
    const first = Math.min(len, ring.length - at);
    emit(ring.subarray(at, at + first));
    if (first < len) emit(ring.subarray(0, len - first));
  };

  /** Claims job `j` for the main thread if no reader has it and it fits; reads it. */
  const claim = (j: number): boolean => {
    const s = j % JOBS;
    const len = nums[s * 2 + 1]!;
    if (!readOnMain && worker) return false;
    if (MAIN_RING - (mainHead - mainTail) < len) {
      if (mainOut > mainTail || iov.length > 0) flush();
      if (MAIN_RING - (mainHead - mainTail) < len) return false;
    }
    if (Atomics.compareExchange(ctl, CTL.NEXT, j, j + 1) !== j) return false;
    const at = mainHead % MAIN_RING;
    try {
      readJob(files[s]!, nums[s * 2]!, len, mainRing, at);
    } catch (e) {
      throw fail(e as Error);
    }
    mine[s] = 1;
    mainAt[s] = at;
    mainHead += len;
    mainEnd[s] = mainHead;
    return true;
  };

  try {
    for (;;) {
      while (hasRoom() && (qHead === q.length || wantMore()) && step());
      if (qHead === q.length) break;
      if (qHead > 4096) {
        q = q.slice(qHead);
        qHead = 0;
      }
      const e = q[qHead]!;
      if (typeof e !== 'number') {
        qHead++;
        emit(e);
        continue;
      }
      const s = e % JOBS;
      const len = nums[s * 2 + 1]!;
      if (!mine[s] && Atomics.load(ctl, CTL.NEXT) === e) claim(e);
      if (mine[s]) {
        emitRing(mainRing, mainAt[s]!, len);
        mainOut = mainEnd[s]!;
      } else {
        const st = Atomics.load(state, s);
        if (st === -(e + 1)) {
          const m = receiveMessageOnPort(port!);
          throw m ? fail(m.message as JobError) : new DroverError(`cannot archive '${root.toString()}': reader thread failed`, 1);
        }
        if (st !== e + 1) {
          // The worker is reading it: read what comes after, walk on, or wait.
          const next = Atomics.load(ctl, CTL.NEXT);
          if (next < published && claim(next)) continue;
          if (hasRoom() && step()) continue;
          flush();
          if (Atomics.wait(state, s, st, 50) === 'timed-out') {
            // Let the worker's 'error' and 'exit' events run: a dead thread must not hang us.
            await new Promise((r) => setImmediate(r));
            if (failure) throw failure;
          }
          continue;
        }
        emitRing(ringBytes, slots[s * SLOT.SIZE + SLOT.RING_AT]!, len);
        workerOut += len;
      }
      qHead++;
      consumed++;
      pathTail = pathEnd[s]!;
    }
    flush();
    return total;
  } finally {
    Atomics.store(ctl, CTL.STOP, 1);
    Atomics.notify(ctl, CTL.PUBLISHED);
    Atomics.notify(ctl, CTL.TAIL);
    port?.close();
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** writev(2) until everything is written; a non-blocking pipe (EAGAIN) is waited on. */
export function writevAllSync(fd: number, bufs: Buffer[]): void {
  let i = 0;
  while (i < bufs.length) {
    let n: number;
    try {
      n = fs.writevSync(fd, i === 0 ? bufs : bufs.slice(i));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(sleeper, 0, 0, 1);
      continue;
    }
    while (i < bufs.length && n >= bufs[i]!.length) n -= bufs[i++]!.length;
    if (n > 0) bufs[i] = bufs[i]!.subarray(n);
  }
}
