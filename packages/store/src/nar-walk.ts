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

/** A NAR string: u64 LE length, bytes, zero padding to 8. */
function narStr(s: string): Buffer {
  const b = Buffer.from(s);
  const out = Buffer.alloc(8 + b.length + padLen(b.length));
  out.writeUInt32LE(b.length, 0);
  b.copy(out, 8);
  return out;
}
const seq = (...words: string[]) => Buffer.concat(words.map(narStr));

// The NAR's fixed word sequences, encoded once: building them per node cost more than the
// lstat, and one copy per sequence beats one per word.
const T = {
  MAGIC_ROOT: seq(NAR_MAGIC, '(', 'type'),
  ENTRY_NAME: seq('entry', '(', 'name'),
  NODE_TYPE: seq('node', '(', 'type'),
  REGULAR: seq('regular', 'contents'),
  EXECUTABLE: seq('regular', 'executable', '', 'contents'),
  SYMLINK: seq('symlink', 'target'),
  DIRECTORY: seq('directory'),
  CLOSE: seq(')'),
};

/**
 * Walks the tree at `root` and yields its NAR as token buffers and file references whose
 * contents the caller reads. Token buffers are views of blocks that are never written again
 * once yielded, so consumers may keep them. Metadata only: synchronous lstat/readdir are
 * several times faster than the thread pool for trees of small files.
 * One generator frame with an explicit stack: nested `yield*` would pass every chunk through
 * one frame per directory level, which cost more than the system calls on deep trees.
 */
export function* narOps(root: PathLike): Generator<NarOp> {
  const out: NarOp[] = [];
  let tok = Buffer.allocUnsafe(TOKEN_BUF);
  let start = 0;
  let used = 0;
  const flush = () => {
    if (used > start) {
      out.push(tok.subarray(start, used));
      start = used;
    }
  };
  /** Room for `n` more bytes in the current segment, starting a new block if need be. */
  const room = (n: number) => {
    if (used + n <= tok.length) return;
    flush();
    tok = Buffer.allocUnsafe(Math.max(TOKEN_BUF, n));
    start = used = 0;
  };
  const put = (b: Buffer) => {
    room(b.length);
    tok.set(b, used);
    used += b.length;
  };
  const str = (b: Buffer) => {
    const total = 8 + b.length + padLen(b.length);
    room(total);
    writeU64(tok, used, b.length);
    tok.set(b, used + 8);
    tok.fill(0, used + 8 + b.length, used + total);
    used += total;
  };
  /** An ASCII name, written without making a Buffer of it. */
  const strAscii = (name: string) => {
    const n = name.length;
    const total = 8 + n + padLen(n);
    room(total);
    writeU64(tok, used, n);
    tok.write(name, used + 8, n, 'latin1');
    tok.fill(0, used + 8 + n, used + total);
    used += total;
  };
  interface Frame {
    prefix: PathLike;
    names: (string | Buffer)[];
    next: number;
    /** This directory is an entry's node: close the entry too when it ends. */
    inEntry: boolean;
  }
  const stack: Frame[] = [];
  /** Emits a node after its `( type`; a directory only opens, its frame emits the rest. True for a directory. */
  const visit = (p: PathLike, inEntry: boolean): boolean => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch (e) {
      throw new NarFormatError(`cannot read '${p.toString()}': ${(e as Error).message}`);
    }
    if (st.isFile()) {
      put(st.mode & 0o100 ? T.EXECUTABLE : T.REGULAR);
      room(8);
      writeU64(tok, used, st.size);
      used += 8;
      flush();
      out.push({ file: p, size: st.size });
      const pad = padLen(st.size);
      if (pad) {
        room(pad);
        tok.fill(0, used, used + pad);
        used += pad;
      }
    } else if (st.isSymbolicLink()) {
      put(T.SYMLINK);
      str(fs.readlinkSync(p, { encoding: 'buffer' }));
    } else if (st.isDirectory()) {
      put(T.DIRECTORY);
      stack.push({ ...listDir(p), next: 0, inEntry });
      return true;
    } else {
      throw new NarFormatError(`'${p.toString()}' is not a regular file, directory or symlink, so it cannot be archived`);
    }
    put(T.CLOSE);
    return false;
  };
  put(T.MAGIC_ROOT);
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
      put(T.ENTRY_NAME);
      let child: PathLike;
      if (typeof name === 'string') {
        strAscii(name);
        child = (top.prefix as string) + name;
      } else {
        str(name);
        child = Buffer.concat([top.prefix as Buffer, name]);
      }
      put(T.NODE_TYPE);
      if (!visit(child, true)) put(T.CLOSE);
    } else {
      stack.pop();
      put(T.CLOSE);
      if (top.inEntry) put(T.CLOSE);
    }
  }
  flush();
  yield* out;
}

const NOT_ASCII = /[^\x01-\x7f]/;
const SLASH = Buffer.from('/');

/**
 * A directory's entries in NAR order (bytewise) and the prefix of their paths. Names that are
 * all ASCII stay strings: a Buffer per name cost more than the lstat, and for ASCII the string
 * order is the byte order. Anything else (UTF-8, invalid bytes) is read again as raw bytes.
 */
function listDir(p: PathLike): { prefix: PathLike; names: (string | Buffer)[] } {
  if (typeof p === 'string') {
    const names = fs.readdirSync(p);
    if (!names.some((n) => NOT_ASCII.test(n))) return { prefix: `${p}/`, names: names.sort() };
  }
  const names = fs.readdirSync(p, { encoding: 'buffer' }).sort(Buffer.compare);
  return { prefix: Buffer.concat([typeof p === 'string' ? Buffer.from(p) : p, SLASH]), names };
}

function writeU64(buf: Buffer, at: number, n: number): void {
  buf.writeUInt32LE(n >>> 0, at);
  buf.writeUInt32LE(Math.floor(n / 2 ** 32), at + 4);
}

export function shrank(p: PathLike): NarFormatError {
  return new NarFormatError(`file '${p.toString()}' changed size while being archived`);
}
