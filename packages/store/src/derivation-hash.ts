// Output paths of derivations (hashDerivationModulo, fixed outputs), checking given ones, and adding a checked .drv to the store.
import { createHash } from 'node:crypto';
import type { Store } from './store.js';
import { DerivationFormatError, DroverError } from './errors.js';
import { Hash, parseHash } from './hash.js';
import { checkStoreName, makeFixedOutputPath, makeOutputPath, makeTextPath, outputPathName } from './store-path.js';
import {
  DRV_EXTENSION,
  checkDerivationPaths,
  compareUtf8,
  derivationName,
  ownKeysRecord,
  parseHashAlgoField,
  readDerivation,
  serializeDerivation,
  type Derivation,
} from './derivation.js';

/**
 * hashDerivationModulo of every .drv met so far in this process, unmasked (as an input).
 * Keyed by path alone: a .drv path is the hash of its contents and store dir.
 */
const drvHashCache = new Map<string, Hash>();

/** Reads an input .drv; the default reads the store, a batch can offer ones not written yet. */
export type DerivationReader = (drvPath: string) => Derivation;

export type DerivationKind = 'input-addressed' | 'fixed';

/** Nix's BasicDerivation::type(), for the kinds Nix 2.8 builds without experimental features. */
export function derivationKind(drv: Derivation, what = 'derivation'): DerivationKind {
  const names = Object.keys(drv.outputs);
  if (names.length === 0) throw new DerivationFormatError(`${what}: must have at least one output`);
  const fixed = names.filter((n) => !!drv.outputs[n]!.hashAlgo);
  if (fixed.length === 0) return 'input-addressed';
  if (fixed.length !== names.length) throw new DerivationFormatError(`${what}: can't mix fixed and input-addressed outputs (${fixed.join(', ')} fixed)`);
  if (fixed.length > 1) throw new DerivationFormatError(`${what}: only one fixed output is allowed, got ${fixed.join(', ')}`);
  if (fixed[0] !== 'out') throw new DerivationFormatError(`${what}: the single fixed output must be named "out", not '${fixed[0]}'`);
  return 'fixed';
}

function fixedHash(drv: Derivation, what: string): { recursive: boolean; hash: Hash } {
  const o = drv.outputs.out!;
  const m = parseHashAlgoField(o.hashAlgo!);
  if (!m) throw new DerivationFormatError(`${what}: unknown hash algorithm '${o.hashAlgo}'`);
  try {
    return { recursive: m.recursive, hash: parseHash(o.hash ?? '', m.algo) };
  } catch (e) {
    throw new DerivationFormatError(`${what}: output 'out': ${(e as Error).message}`);
  }
}

/** The output path of a fixed-output derivation called `name`. */
export function fixedOutputPath(storeDir: string, name: string, drv: Derivation): string {
  const { recursive, hash } = fixedHash(drv, `derivation '${name}'`);
  return makeFixedOutputPath(storeDir, outputPathName(name, 'out'), recursive, hash);
}

export interface HashModuloOptions {
  /** Write output paths and output env vars empty: the hash that output paths are made from. */
  maskOutputs?: boolean;
  /** The derivation's name; a fixed output's path is computed from it (else its given path is used). */
  name?: string;
  /** How input .drv files are read (default: from the store dir). */
  read?: DerivationReader;
}

/**
 * Nix's hashDerivationModulo. Fixed output: sha256 of `fixed:out:[r:]ALGO:HEX:PATH`, so
 * how it is fetched does not matter downstream. Otherwise: sha256 of the ATerm with every
 * input .drv path replaced by the base16 of its own hashDerivationModulo (inputs merged
 * and re-sorted by that key). Input hashes are cached in `cache` for the process.
 */
export function hashDerivationModulo(store: Store, drv: Derivation, cache: Map<string, Hash> = drvHashCache, opts: HashModuloOptions = {}): Hash {
  const read = opts.read ?? ((p: string) => readDerivation(store, p));
  const what = opts.name === undefined ? 'derivation' : `derivation '${opts.name}'`;
  return hashModulo(store.storeDir, drv, opts.name, !!opts.maskOutputs, cache, read, what);
}

function hashModulo(
  storeDir: string,
  drv: Derivation,
  name: string | undefined,
  mask: boolean,
  cache: Map<string, Hash>,
  read: DerivationReader,
  what: string,
): Hash {
  if (derivationKind(drv, what) === 'fixed') {
    const o = drv.outputs.out!;
    const p = name === undefined ? o.path : fixedOutputPath(storeDir, name, drv);
    if (p === '') throw new DerivationFormatError(`${what}: fixed output 'out' has no path and the derivation no name to make one from`);
    const { hash } = fixedHash(drv, what);
    return sha256(`fixed:out:${o.hashAlgo}:${hash.hex}:${p}`);
  }
  const inputs = new Map<string, Set<string>>();
  for (const p of Object.keys(drv.inputDrvs)) {
    let h = cache.get(p);
    if (!h) {
      const input = read(p);
      h = hashModulo(storeDir, input, derivationName(p), false, cache, read, `derivation '${p}'`);
      cache.set(p, h);
    }
    let outs = inputs.get(h.hex);
    if (!outs) inputs.set(h.hex, (outs = new Set()));
    for (const o of drv.inputDrvs[p]!) outs.add(o);
  }
  const replaced = [...inputs.keys()].sort().map((k) => [k, [...inputs.get(k)!].sort(compareUtf8)] as const);
  return sha256(serializeDerivation(drv, { maskOutputs: mask, inputDrvs: replaced }));
}

function sha256(s: string): Hash {
  return new Hash('sha256', createHash('sha256').update(s, 'utf8').digest());
}

/**
 * Fills in the output paths of `drv` (called `name`) and the env var of each output name, as
 * `derivation` in Nix does, and returns them. Input-addressed: from hashDerivationModulo of
 * the derivation with output paths and output env vars empty (so they are part of the hash
 * even when missing). Fixed: from the hash alone.
 */
export function computeOutputPaths(
  store: Store,
  name: string,
  drv: Derivation,
  opts: { cache?: Map<string, Hash>; read?: DerivationReader } = {},
): Record<string, string> {
  const what = `derivation '${name}'`;
  const paths = ownKeysRecord<string>();
  if (derivationKind(drv, what) === 'fixed') {
    paths.out = fixedOutputPath(store.storeDir, name, drv);
  } else {
    const masked: Derivation = { ...drv, outputs: ownKeysRecord(), env: Object.assign(ownKeysRecord<string>(), drv.env) };
    for (const o of Object.keys(drv.outputs)) {
      masked.outputs[o] = { path: '' };
      masked.env[o] = '';
    }
    const h = hashDerivationModulo(store, masked, opts.cache ?? drvHashCache, { maskOutputs: true, name, read: opts.read });
    for (const o of Object.keys(drv.outputs)) paths[o] = makeOutputPath(store.storeDir, o, h, name);
  }
  for (const [o, p] of Object.entries(paths)) {
    drv.outputs[o]!.path = p;
    drv.env[o] = p;
  }
  return paths;
}

export interface AddDerivationOptions {
  dryRun?: boolean;
  /** The .drv path the caller expects (e.g. the key in `nix show-derivation` JSON). */
  expectedPath?: string;
  /** Derivations that count as present though not in the store yet (a batch checked before writing). */
  pending?: ReadonlyMap<string, Derivation>;
  cache?: Map<string, Hash>;
}

/** A deep copy, so checking and filling in never touches the caller's object. */
export function copyDerivation(drv: Derivation): Derivation {
  const outputs = ownKeysRecord<Derivation['outputs'][string]>();
  for (const [k, v] of Object.entries(drv.outputs)) outputs[k] = { ...v };
  const inputDrvs = ownKeysRecord<string[]>();
  for (const [k, v] of Object.entries(drv.inputDrvs)) inputDrvs[k] = [...v];
  return {
    outputs,
    inputDrvs,
    inputSrcs: [...drv.inputSrcs],
    system: drv.system,
    builder: drv.builder,
    args: [...drv.args],
    env: Object.assign(ownKeysRecord<string>(), drv.env),
  };
}

/**
 * Checks a derivation called `name` against the store and computes what is missing: inputs
 * must be valid (or pending), given output paths and output env vars must be the ones Nix
 * computes (empty ones are filled in). Returns the finished derivation and its .drv path.
 * Writes nothing.
 */
export function checkDerivation(store: Store, drv0: Derivation, name: string, opts: AddDerivationOptions = {}): { drv: Derivation; drvPath: string; outputs: Record<string, string> } {
  const what = `derivation '${name}'`;
  checkStoreName(name, 'derivation name');
  checkStoreName(name + DRV_EXTENSION, 'derivation file name');
  const drv = copyDerivation(drv0);
  derivationKind(drv, what);
  checkDerivationPaths(store.storeDir, drv, name, what);
  const pending = opts.pending ?? new Map<string, Derivation>();
  for (const src of drv.inputSrcs) {
    if (!pending.has(src) && !store.db.isValid(src)) throw new DerivationFormatError(`${what}: input source '${src}' is not valid in the store`);
  }
  for (const [p, outs] of Object.entries(drv.inputDrvs)) {
    if (!pending.has(p) && !store.db.isValid(p)) throw new DerivationFormatError(`${what}: input derivation '${p}' is not valid in the store`);
    const input = pending.get(p) ?? readDerivation(store, p);
    for (const o of outs) {
      if (!Object.hasOwn(input.outputs, o)) throw new DerivationFormatError(`${what}: input derivation '${p}' has no output '${o}'`);
    }
  }
  const given = Object.keys(drv.outputs).map((o) => [o, drv.outputs[o]!.path, drv.env[o] ?? ''] as const);
  const read: DerivationReader = (p) => pending.get(p) ?? readDerivation(store, p);
  const outputs = computeOutputPaths(store, name, drv, { cache: opts.cache, read });
  for (const [o, p, envValue] of given) {
    if (p !== '' && p !== outputs[o]) throw new DerivationFormatError(`${what}: output '${o}' is given as '${p}' but its path is '${outputs[o]}'`);
    if (envValue !== '' && envValue !== outputs[o]) {
      throw new DerivationFormatError(`${what}: environment variable '${o}' is '${envValue}' but must be the path of output '${o}', '${outputs[o]}'`);
    }
  }
  const text = serializeDerivation(drv);
  const drvPath = makeTextPath(store.storeDir, name + DRV_EXTENSION, text, derivationReferences(drv));
  if (opts.expectedPath !== undefined && opts.expectedPath !== drvPath) {
    throw new DerivationFormatError(`${what}: given as '${opts.expectedPath}' but its .drv path is '${drvPath}'`);
  }
  return { drv, drvPath, outputs };
}

/** What a .drv refers to: its input sources and input derivations (never its outputs). */
export function derivationReferences(drv: Derivation): string[] {
  return [...new Set([...drv.inputSrcs, ...Object.keys(drv.inputDrvs)])].sort(compareUtf8);
}

/**
 * Checks and completes `drv` (see checkDerivation), then writes it as the text path
 * `NAME.drv` with its inputs as references and registers its outputs in DerivationOutputs,
 * as Nix's writeDerivation does. Returns the .drv path; with `dryRun` only computes it.
 */
export async function addDerivation(store: Store, drv: Derivation, name: string, opts: AddDerivationOptions = {}): Promise<string> {
  const checked = checkDerivation(store, drv, name, opts);
  if (opts.dryRun) return checked.drvPath;
  const written = await store.addTextToStore(name + DRV_EXTENSION, serializeDerivation(checked.drv), derivationReferences(checked.drv), {
    derivationOutputs: checked.outputs,
  });
  if (written !== checked.drvPath) throw new Error(`internal error: wrote '${written}', expected '${checked.drvPath}'`);
  return written;
}

/** One derivation to add, named, maybe listed under the .drv path it should get. */
export interface DerivationToAdd {
  drv: Derivation;
  name: string;
  key?: string;
  where?: string;
  /** The input it came from (`stdin`, a file's name), to begin the errors of its checks. */
  input?: string;
}

/**
 * Adds a batch (e.g. `nix show-derivation --recursive` output): inputs come before the
 * derivations that use them, and every one is checked before any is written, so bad input
 * writes nothing. Returns the .drv paths in the order written.
 */
export async function addDerivations(store: Store, items: readonly DerivationToAdd[], opts: { dryRun?: boolean; cache?: Map<string, Hash> } = {}): Promise<string[]> {
  const byKey = new Map<string, DerivationToAdd>();
  for (const it of items) {
    if (it.key === undefined) continue;
    if (byKey.has(it.key)) throw new DerivationFormatError(`${it.where ?? 'input'}: '${it.key}' is listed twice`);
    byKey.set(it.key, it);
  }
  // Depth-first, inputs first; the keys are checked against the computed paths below, so a
  // cycle here means a key that cannot be right.
  const order: DerivationToAdd[] = [];
  const state = new Map<DerivationToAdd, 'visiting' | 'done'>();
  const visit = (it: DerivationToAdd) => {
    const s = state.get(it);
    if (s === 'done') return;
    if (s === 'visiting') throw new DerivationFormatError(`${it.where ?? 'input'}: its input derivations form a cycle`);
    state.set(it, 'visiting');
    for (const p of Object.keys(it.drv.inputDrvs).sort(compareUtf8)) {
      const dep = byKey.get(p);
      if (dep) visit(dep);
    }
    state.set(it, 'done');
    order.push(it);
  };
  for (const it of items) visit(it);

  const pending = new Map<string, Derivation>();
  const checked: { name: string; drv: Derivation; drvPath: string; outputs: Record<string, string> }[] = [];
  for (const it of order) {
    let c: ReturnType<typeof checkDerivation>;
    try {
      c = checkDerivation(store, it.drv, it.name, { expectedPath: it.key, pending, cache: opts.cache });
    } catch (e) {
      // The check names the derivation ("derivation 'x': ..."); this says which input holds it.
      if (it.input !== undefined && e instanceof DroverError && e.exitCode === 2) throw new DerivationFormatError(`${it.input}: ${e.message}`);
      throw e;
    }
    pending.set(c.drvPath, c.drv);
    checked.push({ name: it.name, ...c });
  }
  if (opts.dryRun) return checked.map((c) => c.drvPath);
  // One registration for the batch: a process killed half-way leaves none of it valid.
  return store.addTextsToStore(
    checked.map((c) => ({ name: c.name + DRV_EXTENSION, contents: serializeDerivation(c.drv), references: derivationReferences(c.drv), derivationOutputs: c.outputs })),
    { cleanStale: true },
  );
}
