// Derivations as JSON in the shape of Nix 2.8's `nix show-derivation`: written byte-for-byte, and read back.
import type { Store } from './store.js';
import { DerivationFormatError, StoreDbError } from './errors.js';
import { parseStorePath } from './store-path.js';
import {
  DRV_EXTENSION,
  compareUtf8,
  decodeDerivationBytes,
  derivationName,
  parseDerivation,
  readDerivation,
  ownKeysRecord,
  normaliseFixedHash,
  keysInNixOrder,
  type Derivation,
  type DerivationOutput,
} from './derivation.js';

// ---------------------------------------------------------------------------------------------
// Writing: Nix 2.8 prints this JSON with its own writer (libutil/json.cc), not nlohmann's.

/**
 * Nix's JSON string escaping: `"` `\` and \n \r \t escaped, other control characters as
 * `\u00XX` (so \b and \f too), everything else (DEL, UTF-8) written as it is.
 */
export function nixJsonString(s: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/["\\\u0000-\u001f]/.test(s)) return `"${s}"`;
  // eslint-disable-next-line no-control-regex
  return `"${s.replace(/["\\\u0000-\u001f]/g, (c) => {
    if (c === '"' || c === '\\') return `\\${c}`;
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  })}"`;
}

type JsonValue = string | JsonValue[] | JsonObject;
/** An object whose key order is exactly the order given (JS objects reorder integer-like keys). */
class JsonObject {
  constructor(readonly entries: Array<[string, JsonValue]>) {}
}

function writeJson(v: JsonValue, depth: number, out: string[]): void {
  if (typeof v === 'string') {
    out.push(nixJsonString(v));
    return;
  }
  const [open, close, items] = Array.isArray(v) ? ['[', ']', v] : ['{', '}', v.entries];
  out.push(open);
  if (items.length === 0) {
    out.push(close);
    return;
  }
  const pad = '\n' + '  '.repeat(depth + 1);
  items.forEach((item, i) => {
    out.push(i === 0 ? pad : `,${pad}`);
    if (Array.isArray(v)) writeJson(item as JsonValue, depth + 1, out);
    else {
      const [k, val] = item as [string, JsonValue];
      out.push(nixJsonString(k), ': ');
      writeJson(val, depth + 1, out);
    }
  });
  out.push('\n', '  '.repeat(depth), close);
}

function outputJson(o: DerivationOutput): JsonObject {
  const e: Array<[string, JsonValue]> = [];
  if (o.path !== '') e.push(['path', o.path]);
  if (o.hashAlgo) {
    e.push(['hashAlgo', o.hashAlgo]);
    if (o.hash) e.push(['hash', o.hash]);
  }
  return new JsonObject(e);
}

function derivationJson(drv: Derivation): JsonObject {
  return new JsonObject([
    ['outputs', new JsonObject(keysInNixOrder(drv.outputs).map((k) => [k, outputJson(drv.outputs[k]!)]))],
    ['inputSrcs', [...drv.inputSrcs].sort(compareUtf8)],
    ['inputDrvs', new JsonObject(keysInNixOrder(drv.inputDrvs).map((k) => [k, [...drv.inputDrvs[k]!].sort(compareUtf8)]))],
    ['system', drv.system],
    ['builder', drv.builder],
    ['args', [...drv.args]],
    ['env', new JsonObject(keysInNixOrder(drv.env).map((k) => [k, drv.env[k]!]))],
  ]);
}

/**
 * The exact text `nix show-derivation` (Nix 2.8) prints for these derivations: an object
 * keyed by .drv path in sorted order, two-space indented, ending in a newline.
 */
export function derivationsToJson(drvs: Iterable<readonly [string, Derivation]>): string {
  const byPath = new Map<string, Derivation>();
  for (const [p, d] of drvs) byPath.set(p, d);
  const root = new JsonObject([...byPath.keys()].sort(compareUtf8).map((p) => [p, derivationJson(byPath.get(p)!)]));
  const out: string[] = [];
  writeJson(root, 0, out);
  out.push('\n');
  return out.join('');
}

// ---------------------------------------------------------------------------------------------
// Reading

/** One derivation from JSON input: `key` is the .drv path it was listed under, if any. */
export interface DerivationJsonEntry {
  key?: string;
  /** The derivation's name: from the key, a `name` field, or `env.name`. */
  name?: string;
  drv: Derivation;
  /** Where in the input it came from, for messages. */
  where: string;
}

const DRV_FIELDS = new Set(['outputs', 'inputSrcs', 'inputDrvs', 'system', 'builder', 'args', 'env', 'name']);
const OUTPUT_FIELDS = new Set(['path', 'hashAlgo', 'hash']);

class JsonShapeReader {
  constructor(readonly where: string) {}

  fail(field: string, message: string): never {
    const at = field.replace(/^\./, '');
    throw new DerivationFormatError(at ? `${this.where}: ${at}: ${message}` : `${this.where}: ${message}`);
  }

  str(v: unknown, field: string): string {
    if (typeof v !== 'string') this.fail(field, `expected a string, got ${describe(v)}`);
    // A lone surrogate (from a \ud800 escape) has no UTF-8 form: Nix could never have written it.
    if (/\p{Cs}/u.test(v)) this.fail(field, 'string contains an unpaired UTF-16 surrogate (not valid UTF-8)');
    // No builder could be given it (the environment and argv are C strings), and no Nix string holds one.
    if (v.includes('\0')) this.fail(field, 'string contains a NUL character');
    return v;
  }

  obj(v: unknown, field: string): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(field, `expected an object, got ${describe(v)}`);
    return v as Record<string, unknown>;
  }

  strings(v: unknown, field: string): string[] {
    if (!Array.isArray(v)) this.fail(field, `expected a list of strings, got ${describe(v)}`);
    return v.map((x, i) => this.str(x, `${field}[${i}]`));
  }

  /** As a set: sorted in Nix's order, duplicates dropped. */
  stringSet(v: unknown, field: string): string[] {
    return [...new Set(this.strings(v, field))].sort(compareUtf8);
  }

  keyOf(k: string, field: string): string {
    return this.str(k, `${field} (a key)`);
  }

  derivation(v: unknown): { drv: Derivation; name?: string } {
    const o = this.obj(v, '');
    for (const k of Object.keys(o)) if (!DRV_FIELDS.has(k)) this.fail('', `unknown field '${k}' (expected ${[...DRV_FIELDS].join(', ')})`);
    for (const k of ['outputs', 'system', 'builder']) if (!(k in o)) this.fail('', `missing field '${k}'`);
    const drv: Derivation = {
      outputs: ownKeysRecord(),
      inputDrvs: ownKeysRecord(),
      inputSrcs: o.inputSrcs === undefined ? [] : this.stringSet(o.inputSrcs, '.inputSrcs'),
      system: this.str(o.system, '.system'),
      builder: this.str(o.builder, '.builder'),
      args: o.args === undefined ? [] : this.strings(o.args, '.args'),
      env: ownKeysRecord(),
    };
    const outputs = this.obj(o.outputs, '.outputs');
    for (const [name, ov] of Object.entries(outputs)) {
      const field = `.outputs.${fieldName(name)}`;
      this.keyOf(name, '.outputs');
      if (name === '') this.fail('.outputs', 'empty output name');
      const out = this.obj(ov, field);
      for (const k of Object.keys(out)) if (!OUTPUT_FIELDS.has(k)) this.fail(field, `unknown field '${k}' (expected path, hashAlgo, hash)`);
      const p = out.path === undefined ? '' : this.str(out.path, `${field}.path`);
      if (out.hashAlgo === undefined) {
        if (out.hash !== undefined) this.fail(`${field}.hash`, 'a hash needs a hashAlgo ([r:]md5, sha1, sha256 or sha512)');
        drv.outputs[name] = { path: p };
      } else {
        const algo = this.str(out.hashAlgo, `${field}.hashAlgo`);
        const hash = out.hash === undefined ? '' : this.str(out.hash, `${field}.hash`);
        try {
          drv.outputs[name] = { path: p, ...normaliseFixedHash(algo, hash, 'fixed output', { anyForm: true }) };
        } catch (e) {
          this.fail(field, (e as Error).message);
        }
      }
    }
    if (Object.keys(drv.outputs).length === 0) this.fail('.outputs', 'a derivation needs at least one output');
    if (o.inputDrvs !== undefined) {
      for (const [p, outs] of Object.entries(this.obj(o.inputDrvs, '.inputDrvs'))) {
        this.keyOf(p, '.inputDrvs');
        drv.inputDrvs[p] = this.stringSet(outs, `.inputDrvs[${JSON.stringify(p)}]`);
      }
    }
    if (o.env !== undefined) {
      for (const [k, val] of Object.entries(this.obj(o.env, '.env'))) {
        this.keyOf(k, '.env');
        drv.env[k] = this.str(val, `.env.${fieldName(k)}`);
      }
    }
    const name = o.name === undefined ? undefined : this.str(o.name, '.name');
    return { drv, name };
  }
}

function fieldName(k: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? k : JSON.stringify(k);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return `${typeof v} ${JSON.stringify(v)}`;
}

/**
 * Where and why JSON text fails to parse: JSON.parse in Node 20 does not always say where,
 * so a small scanner walks the text to the first error.
 */
function jsonSyntaxError(s: string): { at: number; message: string } | undefined {
  let i = 0;
  const stop = (message: string): never => {
    throw { at: i, message };
  };
  const found = () => (i >= s.length ? 'the end of the input' : `'${s[i]}'`);
  const ws = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
  };
  const str = () => {
    const start = i++;
    for (;;) {
      const c = s[i];
      if (c === undefined) {
        i = start;
        stop('unterminated string starting here');
      } else if (c === '"') {
        i++;
        return;
      } else if (c === '\\') {
        const e = s[i + 1];
        if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(s.slice(i + 2, i + 6))) i += 6;
        else stop('bad escape in a string');
      } else if (c < ' ') stop('unescaped control character in a string');
      else i++;
    }
  };
  const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const key = () => {
    ws();
    if (s[i] !== '"') stop(`expected a string (a key) but found ${found()}`);
    str();
    ws();
    if (s[i] !== ':') stop(`expected ':' but found ${found()}`);
    i++;
  };
  // A loop over its own stack of open brackets, not a recursion: text nested deeper than the
  // call stack (100k `[`, which JSON.parse refuses) must still get its place in the message.
  const value = (): void => {
    const open: string[] = [];
    for (;;) {
      ws();
      const c = s[i];
      if (c === '{' || c === '[') {
        const close = c === '{' ? '}' : ']';
        i++;
        ws();
        if (s[i] !== close) {
          open.push(close);
          if (close === '}') key();
          continue;
        }
        i++;
      } else if (c === '"') str();
      else {
        NUMBER.lastIndex = i;
        if (NUMBER.test(s)) i = NUMBER.lastIndex;
        else {
          const lit = ['true', 'false', 'null'].find((l) => s.startsWith(l, i));
          if (!lit) stop(`unexpected ${found()}`);
          i += lit!.length;
        }
      }
      // A value ended: close what it ends, or go on to the next element.
      for (;;) {
        const close = open[open.length - 1];
        if (close === undefined) return;
        ws();
        if (s[i] === close) {
          i++;
          open.pop();
        } else if (s[i] === ',') {
          i++;
          if (close === '}') key();
          break;
        } else stop(`expected ',' or '${close}' but found ${found()}`);
      }
    }
  };
  try {
    value();
    ws();
    if (i < s.length) stop(`trailing garbage: ${found()}`);
  } catch (e) {
    return e as { at: number; message: string };
  }
  return undefined;
}

/** Parses JSON text, reporting a syntax error with its line, column and offset. */
function parseJsonText(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const err = jsonSyntaxError(text) ?? { at: 0, message: (e as Error).message };
    const before = text.slice(0, err.at);
    const line = before.split('\n').length;
    const col = err.at - before.lastIndexOf('\n');
    throw new DerivationFormatError(`${what}: malformed JSON at line ${line}, column ${col} (char ${err.at}): ${err.message}`);
  }
}

/**
 * Reads derivations in `nix show-derivation`'s shape: a map from .drv path to derivation
 * (the key names each one), or one bare derivation object (named by a `name` field or
 * `env.name`). Fixed-output hashes may be in any encoding, SRI included; they come back in
 * base16 as Nix writes them. Paths are not checked here: that needs the store.
 */
export function parseDerivationsJson(text: string, what: string): DerivationJsonEntry[] {
  const root = parseJsonText(text, what);
  const top = new JsonShapeReader(what).obj(root, '');
  if ('outputs' in top) {
    const { drv, name } = new JsonShapeReader(what).derivation(top);
    return [{ name: name ?? drv.env.name, drv, where: what }];
  }
  const keys = Object.keys(top);
  if (keys.length === 0) throw new DerivationFormatError(`${what}: no derivations (expected an object keyed by .drv path, or one derivation)`);
  return keys.map((key) => {
    const where = `${what}: derivation '${key}'`;
    const r = new JsonShapeReader(where);
    r.keyOf(key, '');
    let keyName: string;
    try {
      keyName = derivationName(key);
    } catch (e) {
      throw new DerivationFormatError(`${what}: ${(e as Error).message}`);
    }
    const { drv, name } = r.derivation(top[key]);
    if (name !== undefined && name !== keyName) r.fail('.name', `'${name}' differs from the name '${keyName}' in the path`);
    return { key, name: keyName, drv, where };
  });
}

// ---------------------------------------------------------------------------------------------
// Input of `derivation add`, and output of `derivation show`

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The derivations in the bytes given to `derivation add`: JSON (see parseDerivationsJson)
 * or, when they start with `Derive(`, one .drv in ATerm. `name` names a single derivation
 * that the input does not name by a .drv path.
 */
export function parseDerivationInput(bytes: Uint8Array, what: string, name?: string): DerivationJsonEntry[] {
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    text = decodeDerivationBytes(bytes, what);
  }
  const entries = text.startsWith('Derive(') ? [{ drv: parseDerivation(text, what), where: what } as DerivationJsonEntry] : parseDerivationsJson(text, what);
  if (name !== undefined) {
    if (entries.length !== 1 || entries[0]!.key !== undefined) {
      throw new DerivationFormatError(`${what}: a name was given, but the input names its derivations by their .drv paths`);
    }
    entries[0]!.name = name;
  } else if (entries.length === 1 && entries[0]!.key === undefined) {
    entries[0]!.name ??= entries[0]!.drv.env.name ?? structuredAttrsName(entries[0]!.drv);
  }
  for (const e of entries) {
    if (e.name === undefined) throw new DerivationFormatError(`${e.where}: the derivation has no name (give env.name, a "name" field, or --name)`);
  }
  return entries;
}

/** With `__structuredAttrs`, `name` lives inside the `__json` env var. */
function structuredAttrsName(drv: Derivation): string | undefined {
  const json = drv.env.__json;
  if (json === undefined) return undefined;
  try {
    const attrs = JSON.parse(json) as unknown;
    const name = (attrs as { name?: unknown } | null)?.name;
    return typeof name === 'string' ? name : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `p`, checked as a path to show: a valid .drv path of this store. Separate from
 * showDerivations so a caller can check each path where it read it (a line of stdin).
 */
export function checkShowable(store: Store, p: string): string {
  try {
    parseStorePath(store.storeDir, p);
  } catch (e) {
    throw new DerivationFormatError(`cannot show '${p}': ${(e as Error).message}`);
  }
  if (!p.endsWith(DRV_EXTENSION)) throw new DerivationFormatError(`cannot show '${p}': not a .drv file`);
  // Exit 1, as for every other path that is not valid (query, export; Nix's show-derivation).
  if (!store.db.isValid(p)) throw new StoreDbError(`cannot show '${p}': it is not valid in the store`);
  return p;
}

/**
 * `nix show-derivation [--recursive]`: the JSON of the given valid .drv paths and, with
 * `recursive`, of every .drv in their closure (by the references in the DB, as Nix walks it).
 */
export function showDerivations(store: Store, drvPaths: readonly string[], opts: { recursive?: boolean } = {}): string {
  const roots = new Set<string>();
  for (const p of drvPaths) roots.add(checkShowable(store, p));
  let all: Iterable<string> = roots;
  if (roots.size > 0) {
    const db = store.db;
    if (opts.recursive) {
      const seen = new Set<string>(roots);
      const queue = [...roots];
      while (queue.length > 0) {
        const info = db.queryPathInfo(queue.pop()!);
        for (const r of info?.references ?? []) {
          if (!seen.has(r)) {
            seen.add(r);
            queue.push(r);
          }
        }
      }
      all = [...seen].filter((p) => p.endsWith(DRV_EXTENSION));
    }
  }
  return derivationsToJson([...all].map((p) => [p, readDerivation(store, p)] as const));
}
