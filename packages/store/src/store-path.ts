// Store paths: names, parsing, and the hashes that make them (Nix's makeStorePath family).
import path from 'node:path';
import { StorePathError } from './errors.js';
import { Hash, compressHash, hashBytes, toBase32, type HashAlgo } from './hash.js';

export const HASH_PART_LENGTH = 32;
const NAME_RE = /^[A-Za-z0-9+\-._?=]+$/;
const HASH_PART_RE = /^[0123456789abcdfghijklmnpqrsvwxyz]{32}$/;
export const MAX_NAME_LENGTH = 211;

/**
 * `s` for a message: control characters as `\xNN`, as the NAR parser shows names, so a
 * carriage return or escape sequence in some input cannot rewrite the user's terminal line.
 */
export function printableName(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Why `name` is not a valid store path name, or undefined when it is. */
export function storeNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.length > MAX_NAME_LENGTH) return `is longer than ${MAX_NAME_LENGTH} characters`;
  if (name.startsWith('.')) return "starts with '.'";
  if (!NAME_RE.test(name)) {
    const bad = [...name].find((c) => !NAME_RE.test(c))!;
    return `contains the character '${printableName(bad)}' (allowed: A-Z a-z 0-9 + - . _ ? =)`;
  }
  return undefined;
}

export function checkStoreName(name: string, what = 'store path name'): string {
  const problem = storeNameProblem(name);
  if (problem) throw new StorePathError(`${what} '${printableName(name)}' ${problem}`);
  return name;
}

/** The store dir in the form Nix hashes it: absolute, no trailing slash. */
export function canonicalStoreDir(dir: string): string {
  if (!path.isAbsolute(dir)) throw new StorePathError(`store dir '${dir}' must be an absolute path`);
  const norm = path.posix.normalize(dir);
  return norm.length > 1 && norm.endsWith('/') ? norm.slice(0, -1) : norm;
}

export interface ParsedStorePath {
  hashPart: string;
  name: string;
}

// Character classes as tables: registration checks 200k paths, and a loop over a table
// costs a fraction of three regular expressions on a sliced string.
const BASE32_CHAR = charTable('0123456789abcdfghijklmnpqrsvwxyz');
const NAME_CHAR = charTable('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-._?=');

function charTable(chars: string): Uint8Array {
  const t = new Uint8Array(128);
  for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = 1;
  return t;
}

/** Whether `p` is `STOREDIR/HASH-NAME` with a valid hash part and name: parseStorePath's accept test. */
export function isWellFormedStorePath(storeDir: string, p: string): boolean {
  const base = storeDir.length + 1;
  const nameStart = base + HASH_PART_LENGTH + 1;
  if (p.length <= nameStart || p.length - nameStart > MAX_NAME_LENGTH) return false;
  if (p.charCodeAt(storeDir.length) !== 47 /* / */ || !p.startsWith(storeDir)) return false;
  for (let i = base; i < base + HASH_PART_LENGTH; i++) {
    const c = p.charCodeAt(i);
    if (c >= 128 || BASE32_CHAR[c] === 0) return false;
  }
  if (p.charCodeAt(base + HASH_PART_LENGTH) !== 45 /* - */ || p.charCodeAt(nameStart) === 46 /* . */) return false;
  for (let i = nameStart; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c >= 128 || NAME_CHAR[c] === 0) return false;
  }
  return true;
}

/** Splits `STOREDIR/HASH-NAME`; anything deeper or elsewhere is an error naming the path. */
export function parseStorePath(storeDir: string, p: string): ParsedStorePath {
  if (isWellFormedStorePath(storeDir, p)) {
    const base = storeDir.length + 1;
    return { hashPart: p.slice(base, base + HASH_PART_LENGTH), name: p.slice(base + HASH_PART_LENGTH + 1) };
  }
  const shown = printableName(p);
  if (!p.startsWith(storeDir + '/')) throw new StorePathError(`path '${shown}' is not in the store dir ${storeDir}`);
  const base = p.slice(storeDir.length + 1);
  if (base.includes('/')) throw new StorePathError(`path '${shown}' is inside a store path, not a store path`);
  const hashPart = base.slice(0, HASH_PART_LENGTH);
  if (!HASH_PART_RE.test(hashPart) || base[HASH_PART_LENGTH] !== '-') {
    throw new StorePathError(`path '${shown}' does not start with a 32-character Nix base32 hash and '-'`);
  }
  const name = base.slice(HASH_PART_LENGTH + 1);
  const problem = storeNameProblem(name);
  if (problem) throw new StorePathError(`store path '${shown}': name '${printableName(name)}' ${problem}`);
  return { hashPart, name };
}

export function isStorePath(storeDir: string, p: string): boolean {
  return isWellFormedStorePath(storeDir, p);
}

/** The store path that a path inside the store belongs to (`/s/abc-x/bin/y` → `/s/abc-x`). */
export function toStorePath(storeDir: string, p: string): string {
  if (!p.startsWith(storeDir + '/')) throw new StorePathError(`path '${printableName(p)}' is not in the store dir ${storeDir}`);
  const slash = p.indexOf('/', storeDir.length + 1);
  const sp = slash < 0 ? p : p.slice(0, slash);
  parseStorePath(storeDir, sp);
  return sp;
}

/** Nix's makeStorePath: TYPE:sha256:HEX:STOREDIR:NAME, hashed and folded to 160 bits. */
export function makeStorePath(type: string, inner: Hash, storeDir: string, name: string): string {
  checkStoreName(name);
  const s = `${type}:sha256:${inner.hex}:${storeDir}:${name}`;
  const h = compressHash(hashBytes('sha256', s).bytes, 20);
  return `${storeDir}/${toBase32(h)}-${name}`;
}

function typeWithRefs(type: string, references: Iterable<string>, selfRef = false): string {
  let t = type;
  for (const r of [...references].sort()) t += `:${r}`;
  if (selfRef) t += ':self';
  return t;
}

/** Path of a text file (e.g. a .drv) with the given references: `text:REFS`. */
export function makeTextPath(storeDir: string, name: string, contents: string | Buffer, references: Iterable<string>): string {
  return makeStorePath(typeWithRefs('text', references), hashBytes('sha256', contents), storeDir, name);
}

/**
 * Path of fixed-output content: recursive sha256 is a `source` path (what `nix-store --add` makes);
 * everything else goes through `fixed:out:[r:]ALGO:HEX:`.
 */
export function makeFixedOutputPath(
  storeDir: string,
  name: string,
  recursive: boolean,
  hash: Hash,
  references: Iterable<string> = [],
): string {
  if (recursive && hash.algo === 'sha256') {
    return makeStorePath(typeWithRefs('source', references), hash, storeDir, name);
  }
  const inner = hashBytes('sha256', `fixed:out:${recursive ? 'r:' : ''}${hash.algo}:${hash.hex}:`);
  return makeStorePath('output:out', inner, storeDir, name);
}

/** Output path of an input-addressed derivation output, from its hashDerivationModulo. */
export function makeOutputPath(storeDir: string, outputName: string, drvHashModulo: Hash, drvName: string): string {
  return makeStorePath(`output:${outputName}`, drvHashModulo, storeDir, outputPathName(drvName, outputName));
}

export function outputPathName(drvName: string, outputName: string): string {
  return outputName === 'out' ? drvName : `${drvName}-${outputName}`;
}

/** The `ca` field Nix stores for fixed-output content. */
export function fixedOutputCa(recursive: boolean, hash: Hash): string {
  return `fixed:${recursive ? 'r:' : ''}${hash.algo}:${hash.toString('base32')}`;
}

export function textCa(hash: Hash): string {
  return `text:${hash.algo}:${hash.toString('base32')}`;
}

export type { HashAlgo };
