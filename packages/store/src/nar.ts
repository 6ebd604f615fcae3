// The Nix archive (NAR): streaming serialisation of a file tree, and its validating parser.
import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { DroverError, NarFormatError } from './errors.js';
import { ByteReader, UnexpectedEof } from './byte-reader.js';
import { Hash, type HashAlgo } from './hash.js';
import { ParallelFileWriter } from './file-writer.js';
import { narStreamThreaded } from './nar-threaded.js';
import { dumpNarToFd } from './nar-dump.js';
import { narOps, shrank, padLen, NAR_MAGIC, type NarOp } from './nar-walk.js';
export { narOps, NAR_MAGIC, type NarOp };

const READ_CHUNK = 1 << 20;
/** Longest name or symlink target we accept: Linux's PATH_MAX. Longer ones are hostile. */
const MAX_STRING = 4096;
const ZEROS = Buffer.alloc(8);

type PathLike = string | Buffer;

/**
 * The NAR of `root` as chunks, synchronously. Chunks are fresh buffers of at most 1 MiB,
 * so consumers may keep any of them. For code that cannot await, and for small paths.
 */
export function* narChunks(root: PathLike): Generator<Buffer> {
  for (const op of narOps(root)) {
    if (Buffer.isBuffer(op)) {
      yield op;
      continue;
    }
    const fd = fs.openSync(op.file, 'r');
    try {
      let left = op.size;
      while (left > 0) {
        const buf = Buffer.allocUnsafe(Math.min(left, READ_CHUNK));
        const n = fs.readSync(fd, buf, 0, buf.length, null);
        if (n === 0) throw shrank(op.file);
        left -= n;
        yield n === buf.length ? buf : buf.subarray(0, n);
      }
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** Reads `[pos, pos+len)` into the start of `buf` in the thread pool. */
function readInto(fd: number, buf: Buffer, len: number, pos: number): Promise<Buffer> {
  return new Promise((resolve, reject) => fs.read(fd, buf, 0, len, pos, (err, n) => (err ? reject(err) : resolve(buf.subarray(0, n)))));
}

/**
 * The NAR of a single file for a consumer that is done with each chunk when it asks for the
 * next (hashing, blocking writes): reads run ahead in the thread pool into a few recycled
 * buffers, so there is no thread to start and no fresh memory to fault in.
 */
async function* narStreamRecycled(root: PathLike, chunk = 4 << 20, depth = 3): AsyncGenerator<Buffer> {
  for (const op of narOps(root)) {
    if (Buffer.isBuffer(op)) {
      yield op;
      continue;
    }
    if (op.size === 0) continue;
    const fd = await openAsync(op.file);
    const inflight: Promise<Buffer>[] = [];
    try {
      const pool = Array.from({ length: Math.min(depth, Math.ceil(op.size / chunk)) }, () => Buffer.allocUnsafeSlow(Math.min(chunk, op.size)));
      let pos = 0;
      let next = 0;
      // The buffer a new read goes into is the one the consumer just finished with.
      const issue = () => {
        while (inflight.length < pool.length && pos < op.size) {
          const len = Math.min(chunk, op.size - pos);
          const read = readInto(fd, pool[next++ % pool.length]!, len, pos).then((b) => {
            if (b.length !== len) throw shrank(op.file);
            return b;
          });
          read.catch(() => undefined);
          inflight.push(read);
          pos += len;
        }
      };
      issue();
      while (inflight.length > 0) {
        yield await inflight.shift()!;
        issue();
      }
    } finally {
      await Promise.allSettled(inflight);
      await closeAsync(fd);
    }
  }
}

function openAsync(p: PathLike): Promise<number> {
  return new Promise((resolve, reject) => fs.open(p, 'r', (err, fd) => (err ? reject(err) : resolve(fd))));
}

function closeAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

/** NAR hash and size of a tree (what the validity DB records). */
export function hashPath(root: PathLike, algo: HashAlgo = 'sha256'): { hash: Hash; size: number } {
  const h = createHash(algo);
  let size = 0;
  for (const c of narChunks(root)) {
    h.update(c);
    size += c.length;
  }
  return { hash: new Hash(algo, h.digest()), size };
}

/** Hash of a regular file's bytes (`--flat`). */
export function hashFile(file: PathLike, algo: HashAlgo = 'sha256'): Hash {
  const h = createHash(algo);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new NarFormatError(`cannot read '${file.toString()}': ${(e as Error).message}`);
  }
  try {
    // A directory has no bytes of its own: bad input, said as add-fixed says it. Pipes and
    // devices are read as Nix reads them (`hash --flat /dev/stdin`).
    if (fs.fstatSync(fd).isDirectory()) {
      throw new NarFormatError(`cannot hash '${file.toString()}' flat: it is a directory, not a regular file (without --flat: the hash of its NAR)`);
    }
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        // An I/O error, not bad input: exit 1, as dump says it.
        throw new DroverError(`cannot read '${file.toString()}': ${(e as Error).message}`, 1, { cause: e });
      }
      if (n === 0) break;
      h.update(n === buf.length ? buf : buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return new Hash(algo, h.digest());
}

/**
 * The NAR of `root` by the fastest route: a worker thread for trees and big files (system
 * calls and the consumer's work then run on two cores), inline for small single files where
 * starting a thread would cost more than it saves.
 */
export function narStreamAuto(root: PathLike, opts: { recycle?: boolean } = {}): AsyncIterable<Buffer> {
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(root);
  } catch {
    /* narOps reports the error with its context */
  }
  if (!st || (!st.isDirectory() && st.size < THREAD_THRESHOLD)) return toAsync(narChunks(root));
  // One big file: the thread pool reads ahead as well as a worker would, without its start-up.
  if (!st.isDirectory() && opts.recycle) return narStreamRecycled(root);
  return narStreamThreaded(root, opts);
}
const THREAD_THRESHOLD = 8 << 20;

async function* toAsync<T>(it: Iterable<T>): AsyncGenerator<T> {
  yield* it;
}

/** NAR hash and size of a tree, hashing on one core while another reads (the CLI's path). */
export async function hashPathAsync(root: PathLike, algo: HashAlgo = 'sha256'): Promise<{ hash: Hash; size: number }> {
  const h = createHash(algo);
  let size = 0;
  for await (const c of narStreamAuto(root, { recycle: true })) {
    h.update(c);
    size += c.length;
  }
  return { hash: new Hash(algo, h.digest()), size };
}

/**
 * Writes the NAR of `root` to a file descriptor (stdout of `dump`): this thread walks while a
 * native thread writes, file contents copied by the kernel (sendfile), not through memory.
 */
export { dumpNarToFd as dumpToFd };

/** What the NAR parser tells its consumer; names are raw bytes, validated before the call. */
export interface NarVisitor {
  directory(path: Buffer[]): void | Promise<void>;
  file(path: Buffer[], executable: boolean, size: number): NarFileSink | Promise<NarFileSink>;
  symlink(path: Buffer[], target: Buffer): void | Promise<void>;
}
export interface NarFileSink {
  write(chunk: Buffer): void | Promise<void>;
  close(): void | Promise<void>;
}

/**
 * Parses one NAR from `r`, checking everything Nix checks and more (sorting, names,
 * padding, lengths), and reports each node to `visitor`. Reads exactly the NAR's bytes.
 * `what` names the input in errors, e.g. "standard input".
 */
export async function parseNar(r: ByteReader, visitor: NarVisitor, what = 'NAR'): Promise<void> {
  const fail = (msg: string): never => {
    throw new NarFormatError(`${what}: at byte ${r.offset}: ${msg}`);
  };
  const readLen = async (): Promise<number> => {
    const at = r.offset;
    const b = await r.read(8);
    const hi = b.readUInt32LE(4);
    const n = b.readUInt32LE(0) + hi * 2 ** 32;
    // Named at the length itself, not at the byte after it.
    if (hi >= 2 ** 21) throw new NarFormatError(`${what}: at byte ${at}: absurd length ${b.readBigUInt64LE(0)}`);
    return n;
  };
  const readPad = async (n: number) => {
    const p = padLen(n);
    if (p && !(await r.read(p)).equals(ZEROS.subarray(0, p))) fail('non-zero padding');
  };
  const readStr = async (max: number, ctx: string): Promise<Buffer> => {
    const start = r.offset;
    const n = await readLen();
    if (n > max) throw new NarFormatError(`${what}: at byte ${start}: ${ctx} of ${n} bytes is longer than the limit of ${max}`);
    const b = Buffer.from(await r.read(n));
    await readPad(n);
    return b;
  };
  const expect = async (word: string) => {
    const start = r.offset;
    const got = await readStr(64, `token where '${word}' was expected`);
    if (got.toString('latin1') !== word) {
      throw new NarFormatError(`${what}: at byte ${start}: expected '${word}', got '${printable(got)}'`);
    }
  };
  const node = async (path: Buffer[]): Promise<void> => {
    await expect('(');
    await expect('type');
    const typeAt = r.offset;
    const type = (await readStr(64, 'node type')).toString('latin1');
    if (type === 'regular') {
      let tokAt = r.offset;
      let tok = (await readStr(64, 'token')).toString('latin1');
      let executable = false;
      if (tok === 'executable') {
        executable = true;
        if ((await readStr(0, "the value after 'executable'")).length !== 0) fail("'executable' must be followed by an empty string");
        tokAt = r.offset;
        tok = (await readStr(64, 'token')).toString('latin1');
      }
      if (tok !== 'contents') throw new NarFormatError(`${what}: at byte ${tokAt}: expected 'contents', got '${printable(Buffer.from(tok))}'`);
      const sizeAt = r.offset;
      const size = await readLen();
      const sink = await visitor.file(path, executable, size);
      try {
        await r.readInto(size, (c) => sink.write(c));
      } catch (e) {
        if (e instanceof UnexpectedEof) throw new NarFormatError(`${what}: truncated: file of ${size} bytes declared at byte ${sizeAt} ends early`);
        throw e;
      } finally {
        await sink.close();
      }
      await readPad(size);
    } else if (type === 'symlink') {
      await expect('target');
      const targetAt = r.offset;
      const target = await readStr(MAX_STRING, 'symlink target');
      if (target.length === 0) throw new NarFormatError(`${what}: at byte ${targetAt}: empty symlink target`);
      if (target.includes(0)) throw new NarFormatError(`${what}: at byte ${targetAt}: symlink target contains NUL`);
      await visitor.symlink(path, target);
    } else if (type === 'directory') {
      await visitor.directory(path);
      let prev: Buffer | undefined;
      for (;;) {
        const tokAt = r.offset;
        const tok = (await readStr(64, 'token')).toString('latin1');
        if (tok === ')') return;
        if (tok !== 'entry') throw new NarFormatError(`${what}: at byte ${tokAt}: expected 'entry' or ')', got '${printable(Buffer.from(tok))}'`);
        await expect('(');
        await expect('name');
        const nameAt = r.offset;
        const name = await readStr(255, 'entry name');
        const bad = nameProblem(name);
        if (bad) throw new NarFormatError(`${what}: at byte ${nameAt}: entry name '${printable(name)}' ${bad}`);
        if (prev) {
          const c = Buffer.compare(prev, name);
          if (c === 0) throw new NarFormatError(`${what}: at byte ${nameAt}: duplicate entry '${printable(name)}'`);
          if (c > 0) throw new NarFormatError(`${what}: at byte ${nameAt}: entry '${printable(name)}' is not sorted (comes after '${printable(prev)}')`);
        }
        prev = name;
        await expect('node');
        await node([...path, name]);
        await expect(')');
      }
    } else {
      throw new NarFormatError(`${what}: at byte ${typeAt}: unknown node type '${printable(Buffer.from(type))}'`);
    }
    await expect(')');
  };
  try {
    const magicAt = r.offset;
    const magic = await readStr(64, 'archive magic');
    if (magic.toString('latin1') !== NAR_MAGIC) throw new NarFormatError(`${what}: at byte ${magicAt}: not a Nix archive (bad magic '${printable(magic)}')`);
    await node([]);
  } catch (e) {
    if (e instanceof UnexpectedEof) throw new NarFormatError(`${what}: truncated at byte ${r.offset + e.got}`);
    throw e;
  }
}

function nameProblem(name: Buffer): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.equals(Buffer.from('.')) || name.equals(Buffer.from('..'))) return 'is not allowed';
  if (name.includes(0x2f)) return "contains '/'";
  if (name.includes(0)) return 'contains NUL';
  return undefined;
}

function printable(b: Buffer): string {
  const s = b.subarray(0, 64).toString('utf8').replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return b.length > 64 ? `${s}…` : s;
}

/**
 * Restores one NAR from `r` at `target`, which must not exist. On any error everything
 * written under `target` is removed again, so a bad archive leaves nothing behind.
 */
export async function restoreNar(
  r: ByteReader,
  target: string,
  what = 'NAR',
  opts: { canonical?: boolean; onFileChunk?: (chunk: Buffer) => void } = {},
): Promise<void> {
  const restorer = new NarRestorer({ canonical: opts.canonical });
  await restorer.restore(r, target, what, opts);
  try {
    await restorer.finish(what, () => r.offset);
  } catch (e) {
    await restorer.settle();
    throw restoreFailed(e, target);
  }
}

/**
 * Restores NARs one after another without waiting for each one's files to be written: an
 * import of a thousand small paths otherwise waits on the thread pool's open, write, chmod
 * and close of every path in turn. Files go through one ParallelFileWriter (bounded memory);
 * directories are made read-only once every file is written (`finish`). A caller that
 * stops early, or whose `finish` fails, calls `settle` and removes what was restored.
 */
/** Directories a NarRestorer keeps to make read-only before it finishes them early. */
const MAX_PENDING_DIRS = 4096;

export class NarRestorer {
  private readonly writer: ParallelFileWriter;
  /** Directories to make read-only and date, children before parents. */
  private readonly dirs: Buffer[] = [];

  constructor(private readonly opts: { canonical?: boolean } = {}) {
    this.writer = new ParallelFileWriter({ canonical: opts.canonical });
  }

  /**
   * Parses one NAR from `r` into `target` (which must not exist); its files may still be in
   * flight. An archive that fails to parse leaves nothing of itself behind.
   */
  async restore(r: ByteReader, target: string, what = 'NAR', opts: { onFileChunk?: (chunk: Buffer) => void; fresh?: boolean } = {}): Promise<void> {
    const canonical = this.opts.canonical;
    const t = Buffer.from(target);
    const slash = Buffer.from('/');
    const full = (p: Buffer[]) => (p.length === 0 ? t : Buffer.concat([t, ...p.flatMap((n) => [slash, n])]));
    const dirs: Buffer[] = [];
    const writer = this.writer;
    const visitor: NarVisitor = {
      directory(p) {
        const d = full(p);
        fs.mkdirSync(d, { mode: 0o755 });
        if (canonical) dirs.push(d);
      },
      symlink(p, target) {
        const l = full(p);
        fs.symlinkSync(target, l);
        if (canonical) fs.lutimesSync(l, 1, 1);
      },
      async file(p, executable, size) {
        const job = await writer.begin(full(p), executable ? 0o755 : 0o644, executable ? 0o555 : 0o444, size);
        return {
          write(c) {
            opts.onFileChunk?.(c);
            return job.write(c);
          },
          close: () => job.end(),
        };
      },
    };
    // A failed restore removes its target: one that was there before must be refused first,
    // unless the caller made its directory itself (an import's temp dir), where the creation
    // of the root fails instead.
    if (!opts.fresh && fs.lstatSync(target, { throwIfNoEntry: false })) throw new NarFormatError(`cannot restore to '${target}': it already exists`);
    try {
      await parseNar(r, visitor, what);
      // Children first: a parent made read-only before them would refuse their creation.
      for (let i = dirs.length - 1; i >= 0; i--) this.dirs.push(dirs[i]!);
      // Memory stays bounded in a stream of many directories: those so far are finished now.
      if (this.dirs.length >= MAX_PENDING_DIRS) await this.finish(what, () => r.offset);
    } catch (e) {
      await this.settle();
      throw restoreFailed(fileSystemLimit(e, what, r.offset), target);
    }
  }

  /** Waits for every file, then makes the directories read-only. `what` and `at` name the input's place in errors. */
  async finish(what = 'NAR', at: () => number = () => 0): Promise<void> {
    try {
      await this.writer.drain();
    } catch (e) {
      throw fileSystemLimit(e, what, at());
    }
    for (const d of this.dirs) {
      fs.chmodSync(d, 0o555);
      fs.utimesSync(d, 1, 1);
    }
    this.dirs.length = 0;
  }

  /** Waits for everything in flight, ignoring errors (before removing a failed restore). */
  settle(): Promise<void> {
    return this.writer.settle();
  }
}

/**
 * Removes what a failed restore wrote at `target`, unless someone else made `target` since
 * our check (then it is theirs: left alone, and said so).
 */
function restoreFailed(e: unknown, target: string): unknown {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'EEXIST' && err.path === target) return new NarFormatError(`cannot restore to '${target}': it already exists`);
  removeTree(target);
  return e;
}

/** A hostile archive can nest deeper than the file system allows: that is bad input. */
function fileSystemLimit(e: unknown, what: string, at: number): unknown {
  if ((e as NodeJS.ErrnoException).code === 'ENAMETOOLONG') return new NarFormatError(`${what}: an entry's path is longer than the file system allows (at byte ${at})`);
  return e;
}

/** rm -rf that also removes read-only trees (store paths are read-only), whatever bytes the names hold. */
export function removeTree(p: string | Buffer): void {
  let st: fs.Stats | undefined;
  try {
    // Not thrown for a missing path: commits call this for every path they move in, and an
    // ENOENT exception costs ~30 us of stack capture each.
    st = fs.lstatSync(p, { throwIfNoEntry: false });
  } catch {
    return;
  }
  if (!st) return;
  if (st.isDirectory()) {
    fs.chmodSync(p, 0o755);
    const prefix = Buffer.concat([Buffer.from(p), Buffer.from('/')]);
    for (const name of fs.readdirSync(p, { encoding: 'buffer' })) removeTree(Buffer.concat([prefix, name]));
    fs.rmdirSync(p);
  } else {
    fs.unlinkSync(p);
  }
}
