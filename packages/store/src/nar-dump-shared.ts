// What nar-dump.ts shares with its reader thread: the job table, path arena and ring layout,
// and the read of one job. Imports nothing of drover's: the thread loads it at start.
import fs from 'node:fs';

/** Indexes into `ctl`. */
export const CTL = {
  /** Jobs published by the walk (job numbers below it are valid). */
  PUBLISHED: 0,
  /** The next job a reader may claim: claims are a compare-exchange from c to c+1, in order. */
  NEXT: 1,
  /** Ring bytes the main thread has written out, modulo 2^32: the worker may reuse them. */
  TAIL: 2,
  /** Set when the dump is over (done or failed): the worker leaves. */
  STOP: 3,
} as const;

/** Int32 fields of a job slot in `slots`. */
export const SLOT = { PATH_AT: 0, PATH_LEN: 1, RING_AT: 2, SIZE: 3 } as const;

export interface DumpShared {
  ctl: Int32Array;
  /** Per slot: job+1 once the worker has read it, -(job+1) if it failed (the port says why). */
  state: Int32Array;
  slots: Int32Array;
  /** Per slot: [position in the file, length]. */
  nums: Float64Array;
  /** The files' paths, as bytes; a job names its path by offset and length. */
  paths: Uint8Array;
  /** The worker's buffer ring; its size is a power of two. */
  ring: Uint8Array;
}

/** The shared memory, without the ring, which is made when the reader thread starts. */
export function makeShared(jobs: number, pathBytes: number): Omit<DumpShared, 'ring'> {
  const i32 = (n: number) => new Int32Array(new SharedArrayBuffer(4 * n));
  return {
    ctl: i32(4),
    state: i32(jobs),
    slots: i32(jobs * SLOT.SIZE),
    nums: new Float64Array(new SharedArrayBuffer(8 * 2 * jobs)),
    paths: new Uint8Array(new SharedArrayBuffer(pathBytes)),
  };
}

/** A job's read failed; plain data so it crosses the thread as it is. */
export interface JobError {
  name: string;
  message: string;
  code?: string;
}

/**
 * Reads `[pos, pos+len)` of `file` into `ring` at `at`, wrapping at the ring's end. A file
 * shorter than its lstat said changed while being archived: an error, never silent padding.
 */
export function readJob(file: string | Buffer, pos: number, len: number, ring: Buffer, at: number): void {
  const fd = fs.openSync(file, 'r');
  try {
    let done = 0;
    while (done < len) {
      const to = (at + done) % ring.length;
      const n = fs.readSync(fd, ring, to, Math.min(len - done, ring.length - to), pos + done);
      if (n === 0) throw Object.assign(new Error(`file '${file.toString()}' changed size while being archived`), { name: 'NarFormatError' });
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}
