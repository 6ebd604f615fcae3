// Writing a NAR to a file descriptor: this thread walks the tree while a native thread writes
// the part walked before, the files' contents copied by the kernel (fd-gather.ts).
import { DroverError, NarFormatError } from './errors.js';
import { GatherPlan, type GatherError } from './fd-gather.js';
import { narOps, shrank } from './nar-walk.js';

type PathLike = string | Buffer;

/**
 * Files per batch: enough to keep the writer thread busy while the walk fills the next batch,
 * few enough that the first bytes leave early. (1 GB in 20k files: 64–1024 all within noise.)
 */
const BATCH_FILES = 256;
/** Path bytes per batch; a path is under PATH_MAX (4096), or lstat refused it already. */
const PATH_ARENA = 256 << 10;
/** NAR bytes other than file contents per batch (trees of symlinks or empty files). */
const BATCH_TOKENS = 1 << 20;

/**
 * Writes the NAR of `root` to `fd` and returns its size. Memory is two batches, whatever the
 * size of the tree. A file that shrinks while being archived is a NarFormatError (exit 2),
 * one that cannot be read an I/O error (exit 1); either way nothing is padded or skipped.
 */
export async function dumpNarToFd(root: PathLike, fd: number): Promise<number> {
  const plans = [new GatherPlan(BATCH_FILES, PATH_ARENA), new GatherPlan(BATCH_FILES, PATH_ARENA)];
  let plan = plans[0]!;
  let writing: { done: Promise<void>; plan: GatherPlan } | undefined;
  let total = 0;

  /** Waits for the batch being written; its failure becomes drover's error. */
  const settle = async () => {
    const w = writing;
    writing = undefined;
    if (w) await w.done.catch((e: GatherError) => Promise.reject(gatherFailure(root, w.plan, e)));
  };
  /** Hands the current batch to the writer (after the one before it) and starts the other. */
  const submit = async () => {
    await settle();
    writing = { done: plan.write(fd), plan };
    writing.done.catch(() => {});
    plan = plan === plans[0] ? plans[1]! : plans[0]!;
    plan.reset();
  };

  try {
    for (const op of narOps(root)) {
      if (Buffer.isBuffer(op)) {
        plan.push(op);
        total += op.length;
        if (plan.bytes >= BATCH_TOKENS) await submit();
        continue;
      }
      if (op.size === 0) continue;
      if (!plan.file(op.file, op.size)) {
        await submit();
        if (!plan.file(op.file, op.size)) throw new NarFormatError(`cannot archive '${op.file.toString()}': its path is too long`);
      }
      total += op.size;
    }
    await submit();
    await settle();
    return total;
  } finally {
    // Never leave the writer thread using `fd` after we return: the caller may close it.
    await writing?.done.catch(() => {});
  }
}

/** A failed batch as drover reports it: the tree changed (bad input, 2) or I/O failed (1). */
function gatherFailure(root: PathLike, plan: GatherPlan, e: GatherError): Error {
  if (e.item === undefined) return e;
  const file = plan.nameOf(e.item);
  if (e.code === 'ESHRANK') return shrank(file);
  if (e.code === 'ECHANGED') return new NarFormatError(`'${file}' changed while being archived: it is no longer a regular file`);
  // The output failed (EPIPE: the reader left): as a write error of Node's, which the CLI knows.
  if (e.syscall === 'write') return Object.assign(new Error(`${e.code}: ${e.message}, write`), { code: e.code, syscall: 'write' });
  return new DroverError(`cannot archive '${root.toString()}': ${e.code}: ${e.message}, ${e.syscall} '${file}'`, 1);
}
