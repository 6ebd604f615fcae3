// The .drv file: Nix's ATerm `Derive(...)` format, parsed and written byte-for-byte as Nix 2.8 does.
import fs from 'node:fs';
import path from 'node:path';
import type { Store } from './store.js';
import { DerivationFormatError } from './errors.js';
import { isHashAlgo, parseHash, type Hash, type HashAlgo } from './hash.js';
import { checkStoreName, outputPathName, parseStorePath } from './store-path.js';

/** One output: input-addressed ones have only a path; fixed ones also `hashAlgo` (`[r:]ALGO`) and a base16 `hash`. */
export interface DerivationOutput {
  path: string;
  hashAlgo?: string;
  hash?: string;
}

export interface Derivation {
  /** Keyed by output name. */
  outputs: Record<string, DerivationOutput>;
  /** Input .drv path → the output names used (sorted). */
  inputDrvs: Record<string, string[]>;
  /** Sorted. */
  inputSrcs: string[];
  system: string;
  builder: string;
  args: string[];
  env: Record<string, string>;
}

export const DRV_EXTENSION = '.drv';

/**
 * Nix orders strings as bytes; for UTF-8 that is code point order, which differs from
 * JavaScript's UTF-16 code unit order only between surrogates and U+E000..U+FFFF.
 */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // Surrogates stand for code points above U+FFFF: lift them above U+E000..U+FFFF.
      x = x < 0xe000 ? x + 0x2000 : x - 0x800;
      y = y < 0xe000 ? y + 0x2000 : y - 0x800;
    }
    return x - y;
  }
  return a.length - b.length;
}

/** A record that takes any key, `__proto__` included, as an own property. */
export function ownKeysRecord<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

export function keysInNixOrder(r: Record<string, unknown>): string[] {
  return Object.keys(r).sort(compareUtf8);
}

/** `[r:]ALGO` of a fixed output, split. */
export function parseHashAlgoField(hashAlgo: string): { recursive: boolean; algo: HashAlgo } | undefined {
  const recursive = hashAlgo.startsWith('r:');
  const algo = recursive ? hashAlgo.slice(2) : hashAlgo;
  return isHashAlgo(algo) ? { recursive, algo } : undefined;
}

/** True when the derivation's outputs are fixed (content-addressed with a known hash). */
export function isFixedOutput(drv: Derivation): boolean {
  const outs = Object.values(drv.outputs);
  return outs.length > 0 && outs.every((o) => !!o.hashAlgo);
}

/** The name a .drv path stands for: `/s/HASH-hello-1.0.drv` → `hello-1.0`. */
export function derivationName(drvPath: string): string {
  const base = path.posix.basename(drvPath);
  const dash = base.indexOf('-');
  if (dash < 0 || !base.endsWith(DRV_EXTENSION) || base.length <= dash + 1 + DRV_EXTENSION.length) {
    throw new DerivationFormatError(`'${drvPath}' is not the path of a .drv file (HASH-NAME.drv)`);
  }
  return base.slice(dash + 1, -DRV_EXTENSION.length);
}

// ---------------------------------------------------------------------------------------------
// Parsing

function countCodePoints(s: string, end: number): number {
  let n = 0;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < end) i++;
    n++;
  }
  return n;
}

const HASH_BODY_RE = /^[0-9A-Za-z+/=]+$/;

class AtermParser {
  i = 0;
  constructor(
    readonly s: string,
    readonly what: string,
  ) {}

  fail(message: string, at = this.i): never {
    // Count code points, not UTF-16 units, so the offset is what an editor shows.
    at = countCodePoints(this.s, at);
    throw new DerivationFormatError(`malformed derivation in ${this.what} at char ${at}: ${message}`);
  }

  found(): string {
    if (this.i >= this.s.length) return 'the end of the input';
    const c = this.s[this.i]!;
    return c < ' ' || c === '\u007f' ? `'${JSON.stringify(c).slice(1, -1)}'` : `'${c}'`;
  }

  expect(token: string): void {
    if (this.s.startsWith(token, this.i)) {
      this.i += token.length;
      return;
    }
    // Point at the first character that differs, so truncation and typos are easy to find.
    let k = 0;
    while (k < token.length && this.s[this.i + k] === token[k]) k++;
    this.i += k;
    this.fail(`expected '${token.slice(k)}' but found ${this.found()}`);
  }

  /** A quoted string with Nix's escapes; `raw` fields are ones Nix writes without escaping. */
  string(field: string, raw = false): string {
    if (this.s[this.i] !== '"') this.fail(`expected '"' to start ${field} but found ${this.found()}`);
    const start = this.i;
    this.i++;
    let out = '';
    // Each search resumes where it left off: a long value full of escapes stays linear.
    let q = -1;
    let b = -1;
    for (;;) {
      if (q < this.i) q = this.s.indexOf('"', this.i);
      if (!raw && b < this.i) b = this.s.indexOf('\\', this.i);
      if (q < 0) this.fail(`unterminated string (${field}) starting here`, start);
      if (b < 0 || q < b) {
        if (raw) {
          const bad = this.s.indexOf('\\', this.i);
          if (bad >= 0 && bad < q) this.fail(`'\\' in ${field}, which Nix writes unescaped`, bad);
        }
        out += this.s.slice(this.i, q);
        this.i = q + 1;
        return out;
      }
      out += this.s.slice(this.i, b);
      const c = this.s[b + 1];
      if (c === 'n') out += '\n';
      else if (c === 'r') out += '\r';
      else if (c === 't') out += '\t';
      else if (c === '"' || c === '\\') out += c;
      else if (c === undefined) this.fail(`unterminated string (${field}) starting here`, start);
      else this.fail(`bad escape '\\${c}' in ${field} (Nix writes only \\" \\\\ \\n \\r \\t)`, b);
      this.i = b + 2;
    }
  }

  path(field: string): string {
    const at = this.i;
    const p = this.string(field, true);
    if (!p.startsWith('/')) this.fail(`bad path '${p}' in ${field}: not absolute`, at);
    return p;
  }

  /** `[a,b,...]`, calling `item` for each element. */
  list(field: string, item: () => void): void {
    this.expect('[');
    if (this.s[this.i] === ']') {
      this.i++;
      return;
    }
    for (;;) {
      item();
      const c = this.s[this.i];
      if (c === ',') this.i++;
      else if (c === ']') {
        this.i++;
        return;
      } else this.fail(`expected ',' or ']' in ${field} but found ${this.found()}`);
    }
  }

  /** Nix writes every set and map sorted and without duplicates; anything else is not its output. */
  ordered(prev: string | undefined, next: string, field: string, at: number): void {
    if (prev === undefined) return;
    const c = compareUtf8(prev, next);
    if (c === 0) this.fail(`duplicate ${field} '${next}'`, at);
    if (c > 0) this.fail(`${field} '${next}' is out of order (Nix writes them sorted)`, at);
  }

  output(drv: Derivation, prevName: string | undefined): string {
    this.expect('(');
    const at = this.i;
    const name = this.string('an output name', true);
    if (name === '') this.fail('empty output name', at);
    this.ordered(prevName, name, 'output', at);
    this.expect(',');
    const pathAt = this.i;
    const p = this.string(`the path of output '${name}'`, true);
    this.expect(',');
    const algoAt = this.i;
    const hashAlgo = this.string(`the hash algorithm of output '${name}'`, true);
    this.expect(',');
    const hashAt = this.i;
    const hash = this.string(`the hash of output '${name}'`, true);
    this.expect(')');
    if (p !== '' && !p.startsWith('/')) this.fail(`bad path '${p}' of output '${name}': not absolute`, pathAt);
    if (hashAlgo === '') {
      if (hash !== '') this.fail(`output '${name}' has a hash but no hash algorithm`, hashAt);
      drv.outputs[name] = { path: p };
      return name;
    }
    try {
      drv.outputs[name] = { path: p, ...normaliseFixedHash(hashAlgo, hash, `output '${name}'`) };
    } catch (e) {
      if (e instanceof DerivationFormatError) this.fail(e.message, parseHashAlgoField(hashAlgo) ? hashAt : algoAt);
      throw e;
    }
    if (p === '') this.fail(`fixed output '${name}' has no path`, pathAt);
    return name;
  }

  parse(): Derivation {
    const drv: Derivation = {
      outputs: ownKeysRecord(),
      inputDrvs: ownKeysRecord(),
      inputSrcs: [],
      system: '',
      builder: '',
      args: [],
      env: ownKeysRecord(),
    };
    this.expect('Derive(');
    let prev: string | undefined;
    this.list('the outputs', () => {
      prev = this.output(drv, prev);
    });
    if (prev === undefined) this.fail('a derivation needs at least one output', this.i - 1);
    this.expect(',');
    prev = undefined;
    this.list('the input derivations', () => {
      this.expect('(');
      const at = this.i;
      const p = this.path('an input derivation path');
      this.ordered(prev, p, 'input derivation', at);
      prev = p;
      this.expect(',');
      const outs: string[] = [];
      this.list(`the outputs of input '${p}'`, () => {
        const oat = this.i;
        const o = this.string(`an output name of input '${p}'`, true);
        this.ordered(outs[outs.length - 1], o, `output of input '${p}'`, oat);
        outs.push(o);
      });
      this.expect(')');
      drv.inputDrvs[p] = outs;
    });
    this.expect(',');
    this.list('the input sources', () => {
      const at = this.i;
      const p = this.path('an input source');
      this.ordered(drv.inputSrcs[drv.inputSrcs.length - 1], p, 'input source', at);
      drv.inputSrcs.push(p);
    });
    this.expect(',');
    drv.system = this.string('the system', true);
    this.expect(',');
    drv.builder = this.string('the builder');
    this.expect(',');
    this.list('the arguments', () => {
      drv.args.push(this.string('an argument'));
    });
    this.expect(',');
    prev = undefined;
    this.list('the environment', () => {
      this.expect('(');
      const at = this.i;
      const k = this.string('an environment variable name');
      this.ordered(prev, k, 'environment variable', at);
      prev = k;
      this.expect(',');
      drv.env[k] = this.string(`the value of environment variable '${k}'`);
      this.expect(')');
    });
    this.expect(')');
    if (this.i !== this.s.length) this.fail(`trailing garbage after the derivation: ${this.found()}`);
    return drv;
  }
}

/**
 * Checks `[r:]ALGO` and a hash in any non-SRI encoding Nix accepts in a .drv (with `anyForm`,
 * also `algo:` prefixed and SRI, as in a Nix expression), and returns them as Nix writes
 * them (hash in base16).
 */
export function normaliseFixedHash(hashAlgo: string, hash: string, what: string, opts: { anyForm?: boolean } = {}): { hashAlgo: string; hash: string } {
  const m = parseHashAlgoField(hashAlgo);
  if (!m) {
    throw new DerivationFormatError(`${what}: unknown hash algorithm '${hashAlgo}' (expected [r:]md5, sha1, sha256 or sha512)`);
  }
  if (hash === '') throw new DerivationFormatError(`${what}: floating content-addressed outputs (hash algorithm without a hash) are not supported`);
  if (!opts.anyForm && !HASH_BODY_RE.test(hash)) throw new DerivationFormatError(`${what}: hash '${hash}' is not base16, base32 or base64`);
  let h: Hash;
  try {
    h = parseHash(hash, m.algo);
  } catch (e) {
    throw new DerivationFormatError(`${what}: ${(e as Error).message}`);
  }
  return { hashAlgo, hash: h.hex };
}

/**
 * Parses the text of a .drv. Accepts exactly what Nix writes (sorted, no duplicates, only
 * Nix's escapes, nothing after the closing parenthesis), so serialising gives the same bytes.
 * Errors name `what` and the character offset.
 */
export function parseDerivation(text: string, what = 'the input'): Derivation {
  return new AtermParser(text, what).parse();
}

// ---------------------------------------------------------------------------------------------
// Serialising

const SPECIAL_RE = /["\\\n\r\t]/;
const ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** Nix's printString: `"` and `\` escaped, and newline, CR and tab as \n \r \t. */
export function quoteAterm(s: string): string {
  return SPECIAL_RE.test(s) ? `"${s.replace(/["\\\n\r\t]/g, (c) => ESCAPES[c]!)}"` : `"${s}"`;
}

/** Nix's printUnquotedString, for fields it never escapes: a `"` or `\` there would break the file. */
function rawAterm(s: string, field: string): string {
  if (s.includes('"') || s.includes('\\')) {
    throw new DerivationFormatError(`${field} '${s}' contains '"' or '\\', which Nix writes unescaped in a .drv`);
  }
  return `"${s}"`;
}

export interface SerializeOptions {
  /** Output paths and the env vars named after outputs written empty (for the output path hash). */
  maskOutputs?: boolean;
  /** Written instead of `inputDrvs` (hashDerivationModulo's hashes), in this order. */
  inputDrvs?: ReadonlyArray<readonly [string, readonly string[]]>;
}

/** The exact bytes Nix writes for `drv` (as a string; the file is its UTF-8). */
export function serializeDerivation(drv: Derivation, opts: SerializeOptions = {}): string {
  const mask = !!opts.maskOutputs;
  const parts: string[] = ['Derive(['];
  let first = true;
  for (const name of keysInNixOrder(drv.outputs)) {
    const o = drv.outputs[name]!;
    if (!first) parts.push(',');
    first = false;
    parts.push(
      '(',
      rawAterm(name, 'output name'),
      ',',
      rawAterm(mask ? '' : o.path, `path of output '${name}'`),
      ',',
      rawAterm(o.hashAlgo ?? '', `hash algorithm of output '${name}'`),
      ',',
      rawAterm(o.hash ?? '', `hash of output '${name}'`),
      ')',
    );
  }
  parts.push('],[');
  const inputs = opts.inputDrvs ?? keysInNixOrder(drv.inputDrvs).map((k) => [k, [...drv.inputDrvs[k]!].sort(compareUtf8)] as const);
  first = true;
  for (const [p, outs] of inputs) {
    if (!first) parts.push(',');
    first = false;
    parts.push('(', rawAterm(p, 'input derivation'), ',[', outs.map((o) => rawAterm(o, `output of input '${p}'`)).join(','), '])');
  }
  parts.push('],[', [...drv.inputSrcs].sort(compareUtf8).map((p) => rawAterm(p, 'input source')).join(','), '],');
  parts.push(rawAterm(drv.system, 'system'), ',', quoteAterm(drv.builder), ',[', drv.args.map(quoteAterm).join(','), '],[');
  first = true;
  for (const k of keysInNixOrder(drv.env)) {
    if (!first) parts.push(',');
    first = false;
    parts.push('(', quoteAterm(k), ',', quoteAterm(mask && Object.hasOwn(drv.outputs, k) ? '' : drv.env[k]!), ')');
  }
  parts.push('])');
  return parts.join('');
}

// ---------------------------------------------------------------------------------------------
// Reading from a store

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes a .drv file's bytes, naming the first byte that is not UTF-8. */
export function decodeDerivationBytes(bytes: Uint8Array, what: string): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new DerivationFormatError(`derivation in ${what} is not valid UTF-8 at byte ${firstInvalidUtf8(bytes)}`);
  }
}

function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    const n = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xf0 && c < 0xf5 ? 4 : 0;
    if (n === 0 || i + n > b.length) return i;
    try {
      UTF8.decode(b.subarray(i, i + n));
    } catch {
      return i;
    }
    i += n;
  }
  return i;
}

/**
 * Checks what parsing cannot: that every path belongs to `storeDir`, inputs are .drv files,
 * and output names make valid store path names for a derivation called `name`.
 */
export function checkDerivationPaths(storeDir: string, drv: Derivation, name: string, what: string): void {
  const inStore = (p: string, field: string) => {
    try {
      parseStorePath(storeDir, p);
    } catch (e) {
      throw new DerivationFormatError(`${what}: ${field}: ${(e as Error).message}`);
    }
  };
  for (const [o, out] of Object.entries(drv.outputs)) {
    if (o === 'drv') throw new DerivationFormatError(`${what}: invalid output name 'drv'`);
    try {
      checkStoreName(outputPathName(name, o), `output '${o}': its path name`);
    } catch (e) {
      throw new DerivationFormatError(`${what}: ${(e as Error).message}`);
    }
    if (out.path !== '') inStore(out.path, `output '${o}'`);
  }
  for (const p of Object.keys(drv.inputDrvs)) {
    inStore(p, 'input derivation');
    if (!p.endsWith(DRV_EXTENSION)) throw new DerivationFormatError(`${what}: input derivation '${p}' is not a .drv file`);
  }
  for (const p of drv.inputSrcs) inStore(p, 'input source');
}

/**
 * Reads and parses a .drv from the store dir (valid or not, as Nix's readInvalidDerivation).
 * `file` holds its contents where they are not at `drvPath` yet (an import's scratch copy).
 */
export function readDerivation(store: Store, drvPath: string, file = drvPath): Derivation {
  try {
    parseStorePath(store.storeDir, drvPath);
  } catch (e) {
    throw new DerivationFormatError(`cannot read derivation: ${(e as Error).message}`);
  }
  const name = derivationName(drvPath);
  let bytes: Buffer;
  let fd: number | undefined;
  try {
    // A .drv is a regular file, as Nix writes it. Anything else is refused before it is read:
    // a symlink (an export stream's entry can be one) may lead to /dev/zero, which never ends,
    // and the open of a FIFO would wait for a writer.
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new DerivationFormatError(`cannot read derivation '${drvPath}': it is ${st.isDirectory() ? 'a directory' : 'a special file'}, not a regular file`);
    bytes = fs.readFileSync(fd);
  } catch (e) {
    if (e instanceof DerivationFormatError) throw e;
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'it does not exist in the store' : err.code === 'ELOOP' ? 'it is a symbolic link, not a regular file' : err.message;
    throw new DerivationFormatError(`cannot read derivation '${drvPath}': ${why}`);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  const what = `'${drvPath}'`;
  const drv = parseDerivation(decodeDerivationBytes(bytes, what), what);
  checkDerivationPaths(store.storeDir, drv, name, `derivation ${what}`);
  return drv;
}
