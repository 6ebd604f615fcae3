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

/**
 * Walks the tree at `root` and yields its NAR as token buffers (fresh allocations, safe to
 * keep) and file references whose contents the caller reads. Metadata only: synchronous
 * lstat/readdir are several times faster than the thread pool for trees of small files.
 */
export function* narOps(root: PathLike): Generator<NarOp> {
  let tok = Buffer.allocUnsafe(TOKEN_BUF);
  let used = 0;
  function* flush(): Generator<Buffer> {
    if (used > 0) {
      yield tok.subarray(0, used);
      tok = Buffer.allocUnsafe(TOKEN_BUF);
      used = 0;
    }
  }
  function* str(s: string | Buffer): Generator<Buffer> {
    const b = typeof s === 'string' ? Buffer.from(s) : s;
    const total = 8 + b.length + padLen(b.length);
    if (used + total > TOKEN_BUF) yield* flush();
    if (total > TOKEN_BUF) {
      const big = Buffer.alloc(total);
      big.writeBigUInt64LE(BigInt(b.length), 0);
      b.copy(big, 8);
      yield big;
      return;
    }
    writeU64(tok, used, b.length);
    b.copy(tok, used + 8);
    tok.fill(0, used + 8 + b.length, used + total);
    used += total;
  }
  function* node(p: PathLike): Generator<NarOp> {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch (e) {
      throw new NarFormatError(`cannot read '${p.toString()}': ${(e as Error).message}`);
    }
    yield* str('(');
    yield* str('type');
    if (st.isFile()) {
      yield* str('regular');
      if (st.mode & 0o100) {
        yield* str('executable');
        yield* str('');
      }
      yield* str('contents');
      if (used + 8 > TOKEN_BUF) yield* flush();
      writeU64(tok, used, st.size);
      used += 8;
      yield* flush();
      yield { file: p, size: st.size };
      const pad = padLen(st.size);
      if (pad) {
        tok.fill(0, used, used + pad);
        used += pad;
      }
    } else if (st.isSymbolicLink()) {
      yield* str('symlink');
      yield* str('target');
      yield* str(fs.readlinkSync(p, { encoding: 'buffer' }));
    } else if (st.isDirectory()) {
      yield* str('directory');
      const names = fs.readdirSync(p, { encoding: 'buffer' }).sort(Buffer.compare);
      const prefix = Buffer.concat([typeof p === 'string' ? Buffer.from(p) : p, Buffer.from('/')]);
      for (const name of names) {
        yield* str('entry');
        yield* str('(');
        yield* str('name');
        yield* str(name);
        yield* str('node');
        yield* node(Buffer.concat([prefix, name]));
        yield* str(')');
      }
    } else {
      throw new NarFormatError(`'${p.toString()}' is not a regular file, directory or symlink, so it cannot be archived`);
    }
    yield* str(')');
  }
  yield* str(NAR_MAGIC);
  yield* node(root);
  yield* flush();
}

function writeU64(buf: Buffer, at: number, n: number): void {
  buf.writeUInt32LE(n >>> 0, at);
  buf.writeUInt32LE(Math.floor(n / 2 ** 32), at + 4);
}

export function shrank(p: PathLike): NarFormatError {
  return new NarFormatError(`file '${p.toString()}' changed size while being archived`);
}
