// The goal graph: every derivation a run needs, read level by level with one validity
// query per level, so a no-op run reads the requested .drv files and nothing more.
import { DerivationFormatError, DroverError, UsageError, derivationName, isFixedOutput, readDerivation, resolveStorePath, type Derivation, type FileLock, type Store } from '@drover/store';
import { requiredFeatures } from './system.js';
import { validSubset } from './validity.js';
import type { BuildFailure } from './failure.js';

export type GoalState =
  /** Valid from the start or after someone else built it. */
  | 'valid'
  /** Waiting for input goals. */
  | 'waiting'
  /** Queued to be started. */
  | 'ready'
  /** Waiting for another process's output lock. */
  | 'locking'
  /** A hook request about it is in flight. */
  | 'asking'
  | 'postponed'
  /** Declined by the hook while no local slot was free. */
  | 'slot-wait'
  | 'building'
  /** Outputs complete on disk; registration may still be pending. */
  | 'built'
  | 'failed';

export interface Goal {
  drvPath: string;
  drv: Derivation;
  name: string;
  /** Output name → path, in the derivation's (sorted) order. */
  outputs: Record<string, string>;
  /** `out`, or the first output: the OUT field of trace lines. */
  mainOut: string;
  fixed: boolean;
  features: string[];
  preferLocal: boolean;
  /** Output paths of the inputs (only the outputs named) and the input sources. */
  inputPaths: string[];
  inputGoals: Goal[];
  dependents: Goal[];
  /** Input goals not built yet. */
  waitingFor: number;
  topLevel: boolean;
  state: GoalState;
  locks: FileLock[];
  failure?: BuildFailure;
  /** For a goal that failed because an input did: that input. */
  failedInput?: Goal;
}

export interface GoalGraph {
  goals: Map<string, Goal>;
  /** The requested derivations, in request order, without duplicates. */
  top: Goal[];
}

function makeGoal(store: Store, drvPath: string): Goal {
  const drv = readDerivation(store, drvPath);
  const outputs: Record<string, string> = {};
  for (const [name, o] of Object.entries(drv.outputs)) outputs[name] = o.path;
  const names = Object.keys(outputs);
  if (names.length === 0) throw new DerivationFormatError(`derivation '${drvPath}' has no outputs`);
  const seen = new Map<string, string>();
  for (const [name, p] of Object.entries(outputs)) {
    if (p === '') throw new DerivationFormatError(`derivation '${drvPath}': output '${name}' has no path`);
    // Two outputs at one path (a hand-made .drv): the build would wait for its own lock on it.
    const other = seen.get(p);
    if (other !== undefined) throw new DerivationFormatError(`derivation '${drvPath}': outputs '${other}' and '${name}' have the same path '${p}'`);
    seen.set(p, name);
  }
  return {
    drvPath,
    drv,
    name: derivationName(drvPath),
    outputs,
    mainOut: outputs['out'] ?? outputs[names[0]!]!,
    fixed: isFixedOutput(drv),
    features: requiredFeatures(drv.env),
    preferLocal: drv.env['preferLocalBuild'] === '1',
    inputPaths: [],
    inputGoals: [],
    dependents: [],
    waitingFor: 0,
    topLevel: false,
    state: 'waiting',
    locks: [],
  };
}

/**
 * For valid .drv files among `drvPaths` whose DerivationOutputs rows are all valid paths:
 * those outputs, by name. One query; the rest must be read from disk.
 */
function knownValid(store: Store, drvPaths: readonly string[]): Map<string, Record<string, string>> {
  const rows = store.db.db
    .prepare(
      `select d.path as drv, o.id as name, o.path as out, (select 1 from ValidPaths w where w.path = o.path) as ok
         from ValidPaths d join DerivationOutputs o on o.drv = d.id
        where d.path in (select value from json_each(?))`,
    )
    .all(JSON.stringify(drvPaths)) as { drv: string; name: string; out: string; ok: number | null }[];
  const outs = new Map<string, Record<string, string>>();
  const bad = new Set<string>();
  for (const r of rows) {
    if (!r.ok) bad.add(r.drv);
    let o = outs.get(r.drv);
    if (!o) outs.set(r.drv, (o = {}));
    o[r.name] = r.out;
  }
  for (const d of bad) outs.delete(d);
  return outs;
}

/** A goal already reached, known from the DB alone (its .drv is never read). */
function validGoal(drvPath: string, outputs: Record<string, string>): Goal {
  const names = Object.keys(outputs).sort();
  const sorted: Record<string, string> = {};
  for (const n of names) sorted[n] = outputs[n]!;
  const drv: Derivation = { outputs: {}, inputDrvs: {}, inputSrcs: [], system: '', builder: '', args: [], env: {} };
  for (const n of names) drv.outputs[n] = { path: outputs[n]! };
  return {
    drvPath,
    drv,
    name: derivationName(drvPath),
    outputs: sorted,
    mainOut: sorted['out'] ?? sorted[names[0]!]!,
    fixed: false,
    features: [],
    preferLocal: false,
    inputPaths: [],
    inputGoals: [],
    dependents: [],
    waitingFor: 0,
    topLevel: false,
    state: 'valid',
    locks: [],
  };
}

/**
 * Reads the derivations of `drvPaths` and, for those whose outputs are not all valid, their
 * inputs, recursively. Every .drv must be valid in the store; partially valid derivations
 * are refused (Nix 0.16 calls them blocked).
 */
export function loadGoals(store: Store, drvPaths: readonly string[], places?: readonly string[]): GoalGraph {
  const goals = new Map<string, Goal>();
  const top: Goal[] = [];
  const requested = new Set<string>();
  /** Where a requested path was read, as a message prefix (`standard input: line 3: `). */
  const placeOf = new Map<string, string>();
  for (const [i, arg] of drvPaths.entries()) {
    const at = places?.[i] ? `${places[i]}: ` : '';
    const notDrv = (p: string) => new UsageError(`${at}'${p}' is not a derivation (a store path ending in .drv)`);
    // As Nix does: relative paths, doubled slashes and symlinks into the store (a `result`
    // link, say) name the store path they lead to.
    let p: string;
    try {
      p = resolveStorePath(store.storeDir, arg);
    } catch (e) {
      if (!arg.endsWith('.drv')) throw notDrv(arg);
      throw at !== '' && e instanceof DroverError ? new UsageError(`${at}${e.message}`) : e;
    }
    if (!p.endsWith('.drv')) throw notDrv(p);
    if (!placeOf.has(p)) placeOf.set(p, at);
    requested.add(p);
  }
  let frontier = [...requested];
  while (frontier.length > 0) {
    // Derivations whose outputs the DB lists and all are valid need not be read at all:
    // a no-op run over thousands of derivations is then two queries.
    const known = knownValid(store, frontier);
    const level: Goal[] = [];
    for (const p of frontier) {
      const outs = known.get(p);
      let g: Goal;
      try {
        g = outs ? validGoal(p, outs) : makeGoal(store, p);
      } catch (e) {
        const at = placeOf.get(p);
        throw at && e instanceof DroverError ? new DroverError(`${at}${e.message}`, e.exitCode) : e;
      }
      goals.set(p, g);
      if (!outs) level.push(g);
    }
    const paths: string[] = [];
    for (const g of level) paths.push(g.drvPath, ...Object.values(g.outputs));
    const valid = validSubset(store, paths);
    frontier = [];
    const queued = new Set<string>();
    for (const g of level) {
      if (!valid.has(g.drvPath)) {
        throw new UsageError(`${placeOf.get(g.drvPath) ?? ''}derivation '${g.drvPath}' is not valid in the store (add it with drover-store derivation add)`);
      }
      const outs = Object.values(g.outputs);
      const nValid = outs.filter((o) => valid.has(o)).length;
      if (nValid === outs.length) {
        g.state = 'valid';
        continue;
      }
      if (nValid > 0) {
        throw new DroverError(
          `derivation '${g.drvPath}' is blocked: some of its outputs are valid (${outs.filter((o) => valid.has(o)).join(', ')}) and others are not`,
        );
      }
      for (const d of Object.keys(g.drv.inputDrvs)) {
        if (!goals.has(d) && !queued.has(d)) {
          queued.add(d);
          frontier.push(d);
        }
      }
    }
  }
  for (const p of requested) {
    const g = goals.get(p)!;
    g.topLevel = true;
    top.push(g);
  }
  const srcs = new Map<string, string>();
  for (const g of goals.values()) {
    if (g.state === 'valid') continue;
    for (const [d, names] of Object.entries(g.drv.inputDrvs)) {
      const ig = goals.get(d)!;
      for (const n of names) {
        const p = ig.outputs[n];
        if (p === undefined) throw new DerivationFormatError(`derivation '${g.drvPath}' uses output '${n}' of '${d}', which has no such output`);
        g.inputPaths.push(p);
      }
      if (ig.state !== 'valid') {
        g.inputGoals.push(ig);
        ig.dependents.push(g);
        g.waitingFor++;
      }
    }
    for (const s of g.drv.inputSrcs) {
      g.inputPaths.push(s);
      if (!srcs.has(s)) srcs.set(s, g.drvPath);
    }
  }
  const validSrcs = validSubset(store, [...srcs.keys()]);
  for (const [s, by] of srcs) {
    if (!validSrcs.has(s)) throw new DroverError(`input source '${s}' of derivation '${by}' is not valid in the store`);
  }
  return { goals, top };
}

/** Goals in an order where inputs come first (for --dry-run listings). */
export function buildOrder(graph: GoalGraph): Goal[] {
  const out: Goal[] = [];
  const seen = new Set<Goal>();
  // Iterative post-order: a chain of thousands of derivations must not overflow the stack.
  for (const root of graph.top) {
    if (seen.has(root) || root.state === 'valid') continue;
    seen.add(root);
    const stack: { g: Goal; i: number }[] = [{ g: root, i: 0 }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const next = top.g.inputGoals[top.i++];
      if (next === undefined) {
        out.push(top.g);
        stack.pop();
      } else if (!seen.has(next)) {
        seen.add(next);
        stack.push({ g: next, i: 0 });
      }
    }
  }
  return out;
}
