// The `nix-store --register-validity` / `--dump-db` text format: parse and print.
import { DroverError } from './errors.js';
import { parseHash, type Hash } from './hash.js';
import type { ValidPathInfo } from './db.js';

/**
 * One entry of the format: `PATH`, with hashes `HASH` and `NARSIZE`, then `DERIVER` (empty
 * line for none), `COUNT`, and COUNT reference lines. Paths are checked later, against
 * the store; the parser only checks the shape.
 */
export interface Registration {
  path: string;
  narHash?: Hash;
  narSize?: number;
  deriver?: string;
  references: string[];
  /** 1-based line of the entry's path line, to name the place in errors. */
  line: number;
}

/** A registration text that does not parse: exit 2, naming the input and the line. */
export class RegistrationFormatError extends DroverError {
  constructor(message: string) {
    super(message, 2);
  }
}

/** Most references one entry may declare: far beyond any real closure, small enough to be safe. */
const MAX_REFERENCES = 1_000_000;

/**
 * Parses the whole text. `hashGiven` selects the layout with HASH and NARSIZE lines, as
 * `--hash-given` (and `--load-db`) do. Trailing blank lines are allowed, nothing else is.
 */
export function parseRegistrations(input: string | Buffer, opts: { hashGiven: boolean; what?: string }): Registration[] {
  const what = opts.what ?? 'registration input';
  // Lines are cut from the bytes, not from one big string: a substring of a string is a
  // "sliced" string, and 100k of them made every later sort and Map lookup several times
  // slower; a string decoded from a byte range is flat.
  const buf = typeof input === 'string' ? Buffer.from(input) : input;
  let end = buf.length;
  while (end > 0 && buf[end - 1] === 10) end--;
  // The next line starts at `pos`; past `end` there are none (an empty input has none).
  let pos = end === 0 ? 1 : 0;
  let i = 0;
  const fail = (line: number, msg: string): never => {
    throw new RegistrationFormatError(`${what}: line ${line}: ${msg}`);
  };
  // What a line was expected to be, built only when it is not (100k references would
  // otherwise make 100k messages nobody reads).
  type Expecting = string | (() => string);
  const describe = (e: Expecting) => (typeof e === 'string' ? e : e());
  /** Ends the current line; its bytes are [pos, stop). */
  const lineEnd = (expecting: Expecting): number => {
    if (pos > end) fail(i + 1, `unexpected end of input, expected ${describe(expecting)}`);
    let stop = buf.indexOf(10, pos);
    if (stop < 0 || stop > end) stop = end;
    i++;
    return stop;
  };
  const next = (expecting: Expecting): string => {
    const stop = lineEnd(expecting);
    const l = buf.toString('utf8', pos, stop);
    pos = stop + 1;
    if (l.includes('\r')) fail(i, `carriage return in ${describe(expecting)}`);
    return l;
  };
  // Read from the bytes: no string per size and count line.
  const number = (expecting: string, max: number): number => {
    const stop = lineEnd(expecting);
    let n = 0;
    let digits = stop > pos;
    for (let k = pos; k < stop && digits; k++) {
      const c = buf[k]!;
      digits = c >= 48 && c <= 57;
      n = n * 10 + (c - 48);
    }
    if (!digits) {
      const l = buf.toString('utf8', pos, stop);
      if (l.includes('\r')) fail(i, `carriage return in ${expecting}`);
      fail(i, `expected ${expecting} (a decimal number), got '${clip(l)}'`);
    }
    // Past 2^53 `n` is rounded (but still above any limit, which is at most 2^53 - 1): the
    // message quotes the digits as they were typed, not the rounded value.
    if (n > max) fail(i, `${expecting} ${clip(buf.toString('latin1', pos, stop))} is larger than the limit ${max}`);
    pos = stop + 1;
    return n;
  };
  const storePathLine = (expecting: Expecting): string => {
    const s = next(expecting);
    if (!s.startsWith('/')) fail(i, `expected ${describe(expecting)} (an absolute store path), got '${clip(s)}'`);
    return s;
  };
  const refAt = { k: 0, count: 0, path: '' };
  const refExpecting = () => `reference ${refAt.k + 1} of ${refAt.count} of '${refAt.path}'`;
  const out: Registration[] = [];
  while (pos <= end) {
    const line = i + 1;
    const path = storePathLine('a store path');
    let narHash: Hash | undefined;
    let narSize: number | undefined;
    if (opts.hashGiven) {
      const h = next('the NAR hash');
      try {
        narHash = parseHash(h, 'sha256');
      } catch (e) {
        fail(i, `bad NAR hash for '${path}': ${(e as Error).message}`);
      }
      narSize = number('the NAR size', Number.MAX_SAFE_INTEGER);
    }
    let deriver: string | undefined = next('the deriver (or an empty line)');
    if (deriver === '') deriver = undefined;
    else if (!deriver.startsWith('/')) fail(i, `expected the deriver (a store path or an empty line), got '${clip(deriver)}'`);
    const count = number('the number of references', MAX_REFERENCES);
    refAt.count = count;
    refAt.path = path;
    // Sized once (pushing onto [] reserves 16 slots at once), and every entry made whole, in
    // one shape: 100k of them are most of what a big registration allocates.
    const references: string[] = count === 0 ? [] : new Array<string>(count);
    for (refAt.k = 0; refAt.k < count; refAt.k++) references[refAt.k] = storePathLine(refExpecting);
    const r: Registration = { path, narHash, narSize, deriver, references, line };
    out.push(r);
  }
  return out;
}

/** One entry in the `--dump-db` layout (hash in base16 without its algorithm, as Nix prints it). */
export function formatRegistration(info: ValidPathInfo, opts: { hash?: boolean; deriver?: boolean } = {}): string {
  let s = `${info.path}\n`;
  if (opts.hash ?? true) s += `${info.narHash.toString('base16')}\n${info.narSize}\n`;
  s += `${(opts.deriver ?? true) && info.deriver ? info.deriver : ''}\n`;
  s += `${info.references.length}\n`;
  for (const r of info.references) s += `${r}\n`;
  return s;
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
