// Nix's export stream (`nix-store --export`): the framing around each path's NAR, both ways.
//
//   per path:  u64 1 · NAR · u64 0x4558494e ("NIXE") · string PATH · u64 N · N × string REF
//              · string DERIVER ("" for none) · u64 0 (no legacy signature)
//   end:       u64 0
// Strings as in NAR: u64 length, bytes, zero padding to 8.
import { ExportFormatError } from './errors.js';
import { ByteReader, UnexpectedEof } from './byte-reader.js';

export const EXPORT_MAGIC = 0x4558494e;
/** Longest path string we accept in a trailer: PATH_MAX. */
const MAX_PATH = 4096;
/** Most references one path may declare. */
const MAX_REFS = 1_000_000;

/** What follows each path's NAR. */
export interface ExportTrailer {
  path: string;
  references: string[];
  deriver?: string;
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

function str(s: string): Buffer {
  const body = Buffer.from(s);
  const b = Buffer.alloc(8 + body.length + ((8 - (body.length % 8)) % 8));
  b.writeBigUInt64LE(BigInt(body.length));
  body.copy(b, 8);
  return b;
}

/** The u64 1 that starts each path's entry. */
export const ENTRY_START = u64(1);
/** The u64 0 that ends the stream. */
export const STREAM_END = u64(0);

/** The bytes after a path's NAR; references are written sorted, as Nix's StorePathSet is. */
export function encodeTrailer(t: ExportTrailer): Buffer {
  const refs = [...t.references].sort();
  const strings = [t.path, ...refs, t.deriver ?? ''];
  // One buffer, filled in place: a buffer per field and a concat cost ~25 µs a path.
  let size = 8 + 8 + 8;
  for (const x of strings) size += 8 + padded(Buffer.byteLength(x));
  const b = Buffer.alloc(size);
  let at = b.writeUInt32LE(EXPORT_MAGIC, 0) + 4;
  const put = (x: string) => {
    const n = b.write(x, at + 8);
    b.writeUInt32LE(n, at);
    at += 8 + padded(n);
  };
  put(t.path);
  b.writeUInt32LE(refs.length, at);
  at += 8;
  for (const r of refs) put(r);
  put(t.deriver ?? '');
  return b;
}

function padded(n: number): number {
  return n + ((8 - (n % 8)) % 8);
}

/** Reads the u64 before an entry: true when a path follows, false at the end of the stream. */
export async function readEntryStart(r: ByteReader, what: string): Promise<boolean> {
  const at = r.offset;
  const n = await readU64(r, what, 'an entry marker (1) or the end marker (0)');
  if (n === 0) return false;
  if (n !== 1) throw new ExportFormatError(`${what}: at byte ${at}: expected 1 (a path follows) or 0 (end), got ${n}: not a Nix export stream`);
  return true;
}

/** Reads the trailer after a NAR. Checks the framing only; the paths are checked by the importer. */
export async function readTrailer(r: ByteReader, what: string): Promise<ExportTrailer> {
  const magicAt = r.offset;
  const magic = await readU64(r, what, 'the export magic');
  if (magic !== EXPORT_MAGIC) {
    throw new ExportFormatError(`${what}: at byte ${magicAt}: wrong export magic 0x${magic.toString(16)} (expected 0x${EXPORT_MAGIC.toString(16)} "NIXE")`);
  }
  const path = await readString(r, what, 'the store path', MAX_PATH);
  const countAt = r.offset;
  const count = await readU64(r, what, 'the number of references');
  if (count > MAX_REFS) throw new ExportFormatError(`${what}: at byte ${countAt}: ${count} references for '${path}' is more than the limit ${MAX_REFS}`);
  const references: string[] = [];
  for (let i = 0; i < count; i++) references.push(await readString(r, what, `reference ${i + 1} of '${path}'`, MAX_PATH));
  const deriver = await readString(r, what, `the deriver of '${path}'`, MAX_PATH);
  const sigAt = r.offset;
  const sig = await readU64(r, what, 'the signature marker');
  // Nix < 2 could append one legacy signature; Nix 2.8 reads and ignores it, so do we.
  if (sig === 1) await readString(r, what, `the legacy signature of '${path}'`, 65536);
  else if (sig !== 0) throw new ExportFormatError(`${what}: at byte ${sigAt}: expected 0 or 1 for the signature marker of '${path}', got ${sig}`);
  return { path, references, deriver: deriver === '' ? undefined : deriver };
}

async function readU64(r: ByteReader, what: string, expecting: string): Promise<number> {
  const at = r.offset;
  let b: Buffer;
  try {
    b = await r.read(8);
  } catch (e) {
    if (e instanceof UnexpectedEof) throw new ExportFormatError(`${what}: truncated at byte ${at + e.got}: expected ${expecting}`);
    throw e;
  }
  const hi = b.readUInt32LE(4);
  if (hi >= 2 ** 21) throw new ExportFormatError(`${what}: at byte ${at}: absurd value ${b.readBigUInt64LE(0)} for ${expecting}`);
  return b.readUInt32LE(0) + hi * 2 ** 32;
}

async function readString(r: ByteReader, what: string, expecting: string, max: number): Promise<string> {
  const at = r.offset;
  const n = await readU64(r, what, `the length of ${expecting}`);
  if (n > max) throw new ExportFormatError(`${what}: at byte ${at}: ${expecting} of ${n} bytes is longer than the limit ${max}`);
  const pad = (8 - (n % 8)) % 8;
  let b: Buffer;
  try {
    b = Buffer.from(await r.read(n + pad));
  } catch (e) {
    if (e instanceof UnexpectedEof) throw new ExportFormatError(`${what}: truncated at byte ${r.offset + e.got}: in ${expecting}`);
    throw e;
  }
  for (let i = n; i < n + pad; i++) if (b[i] !== 0) throw new ExportFormatError(`${what}: at byte ${at + 8 + i}: non-zero padding after ${expecting}`);
  const s = b.subarray(0, n);
  if (s.includes(0)) throw new ExportFormatError(`${what}: at byte ${at}: ${expecting} contains NUL`);
  return s.toString('utf8');
}
