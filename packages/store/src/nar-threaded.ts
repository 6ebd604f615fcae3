// A tree's NAR produced by a worker thread: file system calls on one core, the consumer's
// hashing or writing on the other, with memory bounded by a few chunks.
import { MessageChannel, Worker } from 'node:worker_threads';
import { DroverError, NarFormatError } from './errors.js';

type PathLike = string | Buffer;
const CHUNK = 4 << 20;

interface Msg {
  chunk?: ArrayBuffer;
  length?: number;
  done?: boolean;
  error?: { name: string; message: string; code?: string };
}

/**
 * Yields the NAR of `root` in chunks of up to 4 MiB. With `recycle`, a chunk is handed back
 * to the worker for reuse as soon as the consumer asks for the next one, so the consumer
 * must be done with it by then (hashing is; an async stream write may not be).
 */
export async function* narStreamThreaded(root: PathLike, opts: { recycle?: boolean; maxChunks?: number } = {}): AsyncGenerator<Buffer> {
  const signal = new Int32Array(new SharedArrayBuffer(4));
  const { port1: returnsMain, port2: returnsWorker } = new MessageChannel();
  const worker = new Worker(new URL('./nar-reader-worker.js', import.meta.url), {
    workerData: { root, chunkSize: CHUNK, maxChunks: opts.maxChunks ?? 4, signal, returns: returnsWorker },
    transferList: [returnsWorker],
  });
  const queue: Msg[] = [];
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  worker.on('message', (m: Msg) => {
    queue.push(m);
    wake?.();
  });
  worker.on('error', (e) => {
    failure = e;
    wake?.();
  });
  let finished = false;
  worker.on('exit', (code) => {
    // A worker that dies without saying done (out of memory, killed) must not leave us
    // waiting. A clean exit (0) always comes after its last message, though the 'exit'
    // event may be seen before that message is: only a non-zero exit is a failure.
    if (!finished && code !== 0) failure ??= new NarFormatError(`cannot archive '${root.toString()}': reader thread exited with code ${code}`);
    wake?.();
  });
  const free = (ab: ArrayBuffer | undefined) => {
    if (opts.recycle && ab) returnsMain.postMessage(ab, [ab]);
    else returnsMain.postMessage('credit');
    Atomics.add(signal, 0, 1);
    Atomics.notify(signal, 0);
  };
  let last: ArrayBuffer | undefined;
  try {
    for (;;) {
      while (queue.length === 0 && !failure) await new Promise<void>((r) => (wake = r));
      if (failure) throw failure;
      const m = queue.shift()!;
      if (m.error) {
        // Errors cross the thread as data; give them back their drover type: a tree that
        // cannot be archived (a socket, a file that changed size) is bad input, exit 2;
        // an I/O error (EACCES, EIO) is a failure, exit 1, with the system's message.
        if (m.error.name === 'NarFormatError') throw new NarFormatError(m.error.message);
        throw new DroverError(`cannot archive '${root.toString()}': ${m.error.message}`, 1);
      }
      if (m.done) {
        finished = true;
        return;
      }
      const chunk = Buffer.from(m.chunk!, 0, m.length);
      yield chunk;
      last = m.chunk;
      free(last);
    }
  } finally {
    finished = true;
    returnsMain.close();
    await worker.terminate();
  }
}
