// Walking a tree in NAR order: the archive's bytes and the files whose contents follow.
// Kept free of other drover modules, since the NAR reader thread loads it on every start.
import fs from 'node:fs';
import { NarFormatError } from './errors.js';

export const NAR_MAGIC = 'nix-archive-1';
const TOKEN_BUF = 1 << 16;

type PathLike = string | Buffer;

export function padLen(n: number): number {
  return (8 - (n % 8)) % 8;
}

/** One step of a NAR: bytes as they are, or a regular file's contents still to be read. */
export type NarOp = Buffer | { file: PathLike; size: number };

// The NAR's fixed words, made once: building them per node cost more than the lstat.
const T = {
  CLOSE: Buffer.from(')'),
  CONTENTS: Buffer.from('contents'),
  DIRECTORY: Buffer.from('directory'),
  EMPTY: Buffer.from(''),
  ENTRY: Buffer.from('entry'),
  EXECUTABLE: Buffer.from('executable'),
  NAME: Buffer.from('name'),
  NODE: Buffer.from('node'),
  OPEN: Buffer.from('('),
  REGULAR: Buffer.from('regular'),
  SYMLINK: Buffer.from('symlink'),
  TARGET: Buffer.from('target'),
  TYPE: Buffer.from('type'),
  MAGIC: Buffer.from(NAR_MAGIC),
};

/**
 * Walks the tree at `root` and yields its NAR as token buffers (fresh allocations, safe to
 * keep) and file references whose contents the caller reads. Metadata only: synchronous
 * lstat/readdir are several times faster than the thread pool for trees of small files.
 * One generator frame with an explicit stack: nested `yield*` would pass every chunk through
 * one frame per directory level, which cost more than the system calls on deep trees.
 */
export function* narOps(root: PathLike): Generator<NarOp> {
  const out: NarOp[] = [];
  let tok = Buffer.allocUnsafe(TOKEN_BUF);
  let used = 0;
  const flush = () => {
    if (used > 0) {
      out.push(tok.subarray(0, used));
      tok = Buffer.allocUnsafe(TOKEN_BUF);
      used = 0;
    }
  };
  const str = (s: string | Buffer) => {
    const b = typeof s === 'string' ? Buffer.from(s) : s;
    const total = 8 + b.length + padLen(b.length);
    if (used + total > TOKEN_BUF) flush();
    if (total > TOKEN_BUF) {
      const big = Buffer.alloc(total);
      big.writeBigUInt64LE(BigInt(b.length), 0);
      b.copy(big, 8);
      out.push(big);
      return;
    }
    writeU64(tok, used, b.length);
    b.copy(tok, used + 8);
    tok.fill(0, used + 8 + b.length, used + total);
    used += total;
  };
  interface Frame {
    prefix: Buffer;
    names: Buffer[];
    next: number;
    /** This directory is an entry's node: close the entry too when it ends. */
    inEntry: boolean;
  }
  const stack: Frame[] = [];
  const slash = Buffer.from('/');
  /** Emits a node; a directory only opens, its frame emits the rest. True for a directory. */
  const visit = (p: PathLike, inEntry: boolean): boolean => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch (e) {
      throw new NarFormatError(`cannot read '${p.toString()}': ${(e as Error).message}`);
    }
    str(T.OPEN);
    str(T.TYPE);
    if (st.isFile()) {
      str(T.REGULAR);
      if (st.mode & 0o100) {
        str(T.EXECUTABLE);
        str(T.EMPTY);
      }
      str(T.CONTENTS);
      if (used + 8 > TOKEN_BUF) flush();
      writeU64(tok, used, st.size);
      used += 8;
      flush();
      out.push({ file: p, size: st.size });
      const pad = padLen(st.size);
      if (pad) {
        tok.fill(0, used, used + pad);
        used += pad;
      }
    } else if (st.isSymbolicLink()) {
      str(T.SYMLINK);
      str(T.TARGET);
      str(fs.readlinkSync(p, { encoding: 'buffer' }));
    } else if (st.isDirectory()) {
      str(T.DIRECTORY);
      const names = fs.readdirSync(p, { encoding: 'buffer' }).sort(Buffer.compare);
      stack.push({ prefix: Buffer.concat([typeof p === 'string' ? Buffer.from(p) : p, slash]), names, next: 0, inEntry });
      return true;
    } else {
      throw new NarFormatError(`'${p.toString()}' is not a regular file, directory or symlink, so it cannot be archived`);
    }
    str(T.CLOSE);
    return false;
  };
  str(T.MAGIC);
  visit(root, false);
  for (;;) {
    if (out.length > 0) {
      for (const op of out) yield op;
      out.length = 0;
    }
    const top = stack[stack.length - 1];
    if (!top) break;
    if (top.next < top.names.length) {
      const name = top.names[top.next++]!;
      str(T.ENTRY);
      str(T.OPEN);
      str(T.NAME);
      str(name);
      str(T.NODE);
      if (!visit(Buffer.concat([top.prefix, name]), true)) str(T.CLOSE);
    } else {
      stack.pop();
      str(T.CLOSE);
      if (top.inEntry) str(T.CLOSE);
    }
  }
  flush();
  yield* out;
}

function writeU64(buf: Buffer, at: number, n: number): void {
  buf.writeUInt32LE(n >>> 0, at);
  buf.writeUInt32LE(Math.floor(n / 2 ** 32), at + 4);
}

export function shrank(p: PathLike): NarFormatError {
  return new NarFormatError(`file '${p.toString()}' changed size while being archived`);
}
