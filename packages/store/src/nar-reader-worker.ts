// The worker thread of nar-threaded.ts: walks a tree and packs its NAR into chunk buffers.
import fs from 'node:fs';
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { narOps, shrank } from './nar-walk.js';

interface Init {
  root: string | Uint8Array;
  chunkSize: number;
  maxChunks: number;
  /** [0]: bumped by the main thread whenever it frees a chunk (credit or returned buffer). */
  signal: Int32Array;
  returns: MessagePort;
}

const { root, chunkSize, maxChunks, signal, returns } = workerData as Init;
const rootPath = typeof root === 'string' ? root : Buffer.from(root);
let outstanding = 0;
const free: ArrayBuffer[] = [];

/** A buffer to fill: a returned one, a new one while under the limit, else wait for the consumer. */
function nextBuffer(): Buffer {
  for (;;) {
    const seen = Atomics.load(signal, 0);
    let m;
    while ((m = receiveMessageOnPort(returns))) {
      if (m.message === 'credit') outstanding--;
      else {
        outstanding--;
        free.push(m.message as ArrayBuffer);
      }
    }
    if (free.length) {
      outstanding++;
      return Buffer.from(free.pop()!);
    }
    if (outstanding < maxChunks) {
      outstanding++;
      return Buffer.from(new ArrayBuffer(chunkSize));
    }
    Atomics.wait(signal, 0, seen, 1000);
  }
}

let buf = nextBuffer();
let used = 0;

function send(last = false): void {
  if (used === 0) return;
  const ab = buf.buffer as ArrayBuffer;
  parentPort!.postMessage({ chunk: ab, length: used }, [ab]);
  // After the last chunk no buffer is needed; waiting for one would only delay 'done'.
  if (!last) buf = nextBuffer();
  used = 0;
}

try {
  for (const op of narOps(rootPath)) {
    if (Buffer.isBuffer(op)) {
      let off = 0;
      while (off < op.length) {
        const n = Math.min(op.length - off, buf.length - used);
        op.copy(buf, used, off, off + n);
        used += n;
        off += n;
        if (used === buf.length) send();
      }
      continue;
    }
    if (op.size === 0) continue;
    const fd = fs.openSync(op.file, 'r');
    try {
      let left = op.size;
      while (left > 0) {
        const n = fs.readSync(fd, buf, used, Math.min(left, buf.length - used), null);
        if (n === 0) throw shrank(op.file);
        used += n;
        left -= n;
        if (used === buf.length) send();
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  send(true);
  parentPort!.postMessage({ done: true });
} catch (e) {
  const err = e as Error & { code?: string };
  parentPort!.postMessage({ error: { name: err.name, message: err.message, code: err.code } });
}
