// Nix's hash algorithms and their four printed forms: base16, Nix base32, base64, SRI.
import { createHash } from 'node:crypto';
import { HashFormatError } from './errors.js';

export type HashAlgo = 'md5' | 'sha1' | 'sha256' | 'sha512';
export type HashEncoding = 'base16' | 'base32' | 'base64' | 'sri';

export const HASH_ALGOS: readonly HashAlgo[] = ['md5', 'sha1', 'sha256', 'sha512'];
const SIZES: Record<HashAlgo, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

/** A digest together with the algorithm that made it. */
export class Hash {
  private bytesForm: Buffer | undefined;
  /**
   * `hex`, when the caller has it already (a parsed base16 hash), saves encoding it again; with
   * `bytes` undefined it is the hash (lower-case base16, checked by the caller), decoded only
   * if the bytes are asked for: most of 100k registered hashes are only ever printed as hex.
   */
  constructor(
    readonly algo: HashAlgo,
    bytes: Buffer | undefined,
    private hexForm?: string,
  ) {
    const length = bytes ? bytes.length : (hexForm?.length ?? 0) / 2;
    if (length !== SIZES[algo]) {
      throw new HashFormatError(`${algo} hash must be ${SIZES[algo]} bytes, got ${length}`);
    }
    this.bytesForm = bytes;
  }
  get bytes(): Buffer {
    return (this.bytesForm ??= Buffer.from(this.hexForm!, 'hex'));
  }
  get hex(): string {
    return (this.hexForm ??= this.bytes.toString('hex'));
  }
  equals(other: Hash): boolean {
    return this.algo === other.algo && this.bytes.equals(other.bytes);
  }
  /** Nix's printed form; `prefixed` adds `algo:` as in the validity DB and the `.drv` hash fields' siblings. */
  toString(encoding: HashEncoding = 'base32', prefixed = false): string {
    if (encoding === 'sri') return `${this.algo}-${this.bytes.toString('base64')}`;
    const body =
      encoding === 'base16'
        ? this.hex
        : encoding === 'base32'
          ? toBase32(this.bytes)
          : this.bytes.toString('base64');
    return prefixed ? `${this.algo}:${body}` : body;
  }
}

export function isHashAlgo(s: string): s is HashAlgo {
  return (HASH_ALGOS as readonly string[]).includes(s);
}

export function hashSize(algo: HashAlgo): number {
  return SIZES[algo];
}

export function parseHashAlgo(s: string): HashAlgo {
  if (!isHashAlgo(s)) throw new HashFormatError(`unknown hash algorithm '${s}' (expected md5, sha1, sha256 or sha512)`);
  return s;
}

export function hashBytes(algo: HashAlgo, data: string | Buffer): Hash {
  return new Hash(algo, createHash(algo).update(data).digest());
}

// Nix's base32 drops e, o, u and t to avoid words and confusion.
const BASE32_CHARS = '0123456789abcdfghijklmnpqrsvwxyz';
const BASE32_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < BASE32_CHARS.length; i++) BASE32_VALUE[BASE32_CHARS.charCodeAt(i)] = i;

export function base32Length(bytes: number): number {
  return Math.ceil((bytes * 8) / 5);
}

/** Nix base32: the last character holds the lowest bits of the first byte (Nix's own bit order). */
export function toBase32(bytes: Uint8Array): string {
  const len = base32Length(bytes.length);
  let out = '';
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const c = (bytes[i]! >> j) | (i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0);
    out += BASE32_CHARS[c & 0x1f];
  }
  return out;
}

export function fromBase32(s: string, size: number): Buffer {
  if (s.length !== base32Length(size)) throw new HashFormatError(`base32 hash '${s}' has the wrong length`);
  const out = Buffer.alloc(size);
  for (let n = 0; n < s.length; n++) {
    const code = s.charCodeAt(s.length - n - 1);
    const digit = code < 128 ? BASE32_VALUE[code]! : -1;
    if (digit < 0) throw new HashFormatError(`invalid character '${s[s.length - n - 1]}' in base32 hash '${s}'`);
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i] = out[i]! | ((digit << j) & 0xff);
    const carry = digit >> (8 - j);
    if (i + 1 < size) out[i + 1] = out[i + 1]! | carry;
    else if (carry) throw new HashFormatError(`base32 hash '${s}' does not fit in ${size} bytes`);
  }
  return out;
}

const HEX_RE = /^[0-9a-fA-F]*$/;
const LOWER_HEX_RE = /^[0-9a-f]*$/;
const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Parses a hash the way Nix accepts one: `algo-base64` (SRI), `algo:body`, or a bare body
 * whose length says whether it is base16, base32 or base64. `algo` is needed for bare bodies.
 */
export function parseHash(input: string, algo?: HashAlgo): Hash {
  // Bare base16 of a known algorithm (every --hash-given line): decoding validates it, since
  // a character that is not hex stops the decoder short of the full size.
  if (algo && input.length === SIZES[algo] * 2) {
    if (LOWER_HEX_RE.test(input)) return new Hash(algo, undefined, input);
    const bytes = Buffer.from(input, 'hex');
    if (bytes.length === SIZES[algo]) return new Hash(algo, bytes);
  }
  let body = input;
  let a: HashAlgo | undefined = algo;
  let sri = false;
  const sep = input.search(/[:-]/);
  if (sep > 0 && isHashAlgo(input.slice(0, sep))) {
    const named = input.slice(0, sep) as HashAlgo;
    if (a && a !== named) throw new HashFormatError(`hash '${input}' is ${named}, expected ${a}`);
    a = named;
    sri = input[sep] === '-';
    body = input.slice(sep + 1);
  } else if (sep > 0) {
    // No body of any encoding holds ':' or '-': the part before it is meant as an algorithm.
    throw new HashFormatError(`hash '${input}': unknown hash algorithm '${input.slice(0, sep)}' (known: ${Object.keys(SIZES).join(', ')}; lower case)`);
  }
  if (!a) throw new HashFormatError(`hash '${input}' does not say its algorithm (write it as sha256:… or in SRI form)`);
  const size = SIZES[a];
  if (sri) {
    if (!B64_RE.test(body)) throw new HashFormatError(`invalid base64 in SRI hash '${input}'`);
    const bytes = Buffer.from(body, 'base64');
    // As Nix's decoder: the unused bits of the last character are not checked.
    if (bytes.length !== size || body.length !== Math.ceil(size / 3) * 4) throw new HashFormatError(`SRI hash '${input}' has the wrong length for ${a}`);
    return new Hash(a, bytes);
  }
  if (body.length === size * 2 && HEX_RE.test(body)) return new Hash(a, Buffer.from(body, 'hex'));
  if (body.length === base32Length(size)) return new Hash(a, fromBase32(body, size));
  const b64Len = Math.ceil(size / 3) * 4;
  if (body.length === b64Len && B64_RE.test(body)) {
    const bytes = Buffer.from(body, 'base64');
    if (bytes.length === size) return new Hash(a, bytes);
  }
  throw new HashFormatError(`hash '${input}' has wrong length or characters for a ${a} hash`);
}

/** Folds a digest to `size` bytes by XOR, as Nix's compressHash does for store path hashes. */
export function compressHash(bytes: Uint8Array, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < bytes.length; i++) out[i % size] = out[i % size]! ^ bytes[i]!;
  return out;
}
