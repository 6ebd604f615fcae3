// Writing a NAR to a file descriptor: this thread walks the tree while a native thread writes
// the part walked before, the files' contents copied by the kernel (gather-stream.ts).
import { GatherStream } from './gather-stream.js';
import { narOps } from './nar-walk.js';

type PathLike = string | Buffer;

/**
 * Writes the NAR of `root` to `fd` and returns its size. Memory is two batches, whatever the
 * size of the tree. A file that shrinks while being archived is a NarFormatError (exit 2),
 * one that cannot be read an I/O error (exit 1); either way nothing is padded or skipped.
 */
export async function dumpNarToFd(root: PathLike, fd: number): Promise<number> {
  const out = new GatherStream(fd, root.toString());
  try {
    const size = await writeNar(out, root);
    await out.flush();
    return size;
  } finally {
    await out.close();
  }
}

/** Queues the NAR of `root` on `out` (not flushed) and returns its size. */
export async function writeNar(out: GatherStream, root: PathLike): Promise<number> {
  let total = 0;
  for (const op of narOps(root)) {
    if (Buffer.isBuffer(op)) {
      await out.push(op);
      total += op.length;
    } else {
      await out.file(op.file, op.size);
      total += op.size;
    }
  }
  return total;
}
