// Reading a file descriptor (stdin: a file, a pipe or a socket) as a stream of big chunks carved out of recycled-size slabs.
//
// fs.createReadStream allocates a buffer of its full read size for every read and, when a
// read returns less (a pipe gives at most its 64 KiB capacity), copies the bytes into a
// second, fitting buffer: for an export stream from a pipe that was 16 MiB of allocation
// and a copy per MiB read, and twice the CPU of reading the same bytes from a file.
// Here reads land back to back in one slab and the consumer gets everything read since it
// last asked as one subarray, so a fast producer gives large chunks even through a pipe.
import fs from 'node:fs';

export interface FdChunksOptions {
  /** Size of each slab the reads fill (default 1 MiB). */
  slab?: number;
  /** Bytes read ahead of the consumer before reading pauses (default 4 MiB). */
  ahead?: number;
}

/** A fresh slab is started when the current one has less room than this. */
const MIN_READ = 64 << 10;

/**
 * Yields the bytes of `fd` until end of file. Reads run in the thread pool while the
 * consumer works on the previous chunk; yielded chunks are never written to again.
 */
export async function* fdChunks(fd: number, opts: FdChunksOptions = {}): AsyncGenerator<Buffer> {
  const slabSize = Math.max(MIN_READ, opts.slab ?? 1 << 20);
  const ahead = Math.max(slabSize, opts.ahead ?? 4 << 20);
  let slab = Buffer.allocUnsafeSlow(slabSize);
  let filled = 0;
  let given = 0;
  /** Whole regions of earlier slabs not yet yielded. */
  const ready: Buffer[] = [];
  let readyBytes = 0;
  let eof = false;
  let error: Error | undefined;
  let reading = false;
  let wake: (() => void) | undefined;

  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const startRead = (): void => {
    if (reading || eof || error || readyBytes + (filled - given) >= ahead) return;
    if (slabSize - filled < MIN_READ) {
      if (filled > given) {
        ready.push(slab.subarray(given, filled));
        readyBytes += filled - given;
      }
      slab = Buffer.allocUnsafeSlow(slabSize);
      filled = given = 0;
    }
    reading = true;
    fs.read(fd, slab, filled, slabSize - filled, null, (err, n) => {
      reading = false;
      if (err) {
        // A non-blocking descriptor with nothing to read yet: try again in a moment.
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          setTimeout(() => {
            startRead();
            notify();
          }, 2);
          return;
        }
        error = err;
      } else if (n === 0) {
        eof = true;
      } else {
        filled += n;
        startRead();
      }
      notify();
    });
  };

  for (;;) {
    startRead();
    if (ready.length > 0) {
      const b = ready.shift()!;
      readyBytes -= b.length;
      yield b;
      continue;
    }
    if (filled > given) {
      const b = slab.subarray(given, filled);
      given = filled;
      yield b;
      continue;
    }
    if (error) throw error;
    if (eof) return;
    await new Promise<void>((resolve) => (wake = resolve));
  }
}
