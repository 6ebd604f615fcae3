// Nix's topological order of store paths (topoSort in libutil), reproduced exactly.
import { DroverError } from './errors.js';

/** A reference cycle among paths that must be ordered: malformed input, exit 2. */
export class ReferenceCycleError extends DroverError {
  constructor(readonly path: string, readonly parent: string) {
    super(`cycle detected in the references of '${parent}' to '${path}'`, 2);
  }
}

/**
 * Store paths and their references as indices, in compressed rows: `paths` sorted (byte
 * order); the references of path i are `refList[refStart[i] .. refStart[i+1])`, ascending.
 * Index order is path order, which makes Nix's sorted walks cheap, and the flat arrays keep
 * a 100k-path closure to a handful of allocations.
 */
export interface PathGraph {
  paths: string[];
  refStart: Int32Array;
  refList: Int32Array;
}

/** The references of path `i` of a graph (indices, ascending). */
export function refsOf(g: PathGraph, i: number): Int32Array {
  return g.refList.subarray(g.refStart[i]!, g.refStart[i + 1]!);
}

/**
 * Builds a PathGraph from `paths` (sorted) and edges given as parallel arrays of indices
 * (`from[k]` refers to `to[k]`); each row's references are sorted here.
 */
export function graphFromEdges(paths: string[], from: ArrayLike<number>, to: ArrayLike<number>, edges: number): PathGraph {
  const n = paths.length;
  const refStart = new Int32Array(n + 1);
  for (let k = 0; k < edges; k++) refStart[from[k]! + 1]!++;
  for (let i = 0; i < n; i++) refStart[i + 1]! += refStart[i]!;
  const fill = refStart.slice(0, n);
  const refList = new Int32Array(edges);
  for (let k = 0; k < edges; k++) refList[fill[from[k]!]!++] = to[k]!;
  for (let i = 0; i < n; i++) if (refStart[i + 1]! - refStart[i]! > 1) refList.subarray(refStart[i]!, refStart[i + 1]!).sort();
  return { paths, refStart, refList };
}

/** Builds a PathGraph from paths and a reference lookup (references outside `items` dropped). */
export function pathGraph(items: Iterable<string>, referencesOf: (p: string) => readonly string[] | undefined): PathGraph {
  // Default sort compares UTF-16 code units: byte order for ASCII store paths, and fast.
  const paths = [...new Set(items)].sort();
  const index = new Map<string, number>();
  paths.forEach((p, i) => index.set(p, i));
  const from: number[] = [];
  const to: number[] = [];
  paths.forEach((p, i) => {
    for (const r of referencesOf(p) ?? []) {
      const j = index.get(r);
      if (j !== undefined) {
        from.push(i);
        to.push(j);
      }
    }
  });
  return graphFromEdges(paths, from, to, from.length);
}

/**
 * The graph's paths references first, in exactly the order `nix-store -qR` and `--export`
 * use (Nix's topoSort, reversed): a post-order depth-first walk that visits the paths and
 * each node's references in sorted order, skipping self-references. Iterative over
 * typed arrays, so a 100k-long chain neither overflows the stack nor allocates per node.
 */
export function topoSortGraph(g: PathGraph): string[] {
  const n = g.paths.length;
  const state = new Uint8Array(n); // 0 new, 1 on the stack, 2 done
  const stack = new Int32Array(n);
  const next = new Int32Array(n);
  const out: string[] = new Array(n);
  let emitted = 0;
  for (let root = 0; root < n; root++) {
    if (state[root] !== 0) continue;
    let sp = 0;
    stack[sp++] = root;
    state[root] = 1;
    next[root] = 0;
    while (sp > 0) {
      const node = stack[sp - 1]!;
      const at = g.refStart[node]! + next[node]!;
      if (at < g.refStart[node + 1]!) {
        next[node]!++;
        const child = g.refList[at]!;
        if (child === node) continue;
        if (state[child] === 1) throw new ReferenceCycleError(g.paths[child]!, g.paths[node]!);
        if (state[child] === 0) {
          state[child] = 1;
          next[child] = 0;
          stack[sp++] = child;
        }
      } else {
        sp--;
        state[node] = 2;
        out[emitted++] = g.paths[node]!;
      }
    }
  }
  return out;
}

/** topoSortGraph over paths given with a reference lookup. */
export function topoSortPaths(items: Iterable<string>, referencesOf: (p: string) => readonly string[] | undefined): string[] {
  return topoSortGraph(pathGraph(items, referencesOf));
}

/** Nix sorts store paths as byte strings; store paths are ASCII, so code units agree. */
export function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * References as indices, in compressed rows and in no particular order: item i refers to
 * `target[start[i] .. start[i+1])`, where -1 is something outside the items. A registration
 * batch is checked and written in this form, so no path is looked up by its text twice.
 */
export interface IndexedReferences {
  start: Int32Array;
  target: Int32Array;
}

/**
 * Throws ReferenceCycleError if the references among `items` form a cycle: the walk of
 * topoSortGraph without sorting, over indices (registration batches of 100k paths).
 */
export function checkAcyclic(items: Iterable<string>, referencesOf: (p: string) => readonly string[] | undefined): void {
  const paths = [...items];
  const index = new Map<string, number>();
  paths.forEach((p, i) => index.set(p, i));
  const lists = paths.map((p) => referencesOf(p) ?? []);
  const start = new Int32Array(paths.length + 1);
  for (let i = 0; i < paths.length; i++) start[i + 1] = start[i]! + lists[i]!.length;
  const target = new Int32Array(start[paths.length]!);
  let k = 0;
  for (const list of lists) for (const ref of list) target[k++] = index.get(ref) ?? -1;
  checkAcyclicIndexed(paths, { start, target });
}

/** checkAcyclic over references given as indices into `paths`. */
export function checkAcyclicIndexed(paths: readonly string[], refs: IndexedReferences): void {
  const { start, target } = refs;
  const n = paths.length;
  const state = new Uint8Array(n);
  const stack = new Int32Array(n);
  // Where each node on the stack is in its references.
  const next = start.slice(0, n);
  for (let root = 0; root < n; root++) {
    if (state[root] !== 0) continue;
    let sp = 0;
    stack[sp++] = root;
    state[root] = 1;
    while (sp > 0) {
      const node = stack[sp - 1]!;
      if (next[node]! < start[node + 1]!) {
        const child = target[next[node]!++]!;
        if (child < 0 || child === node || state[child] === 2) continue;
        if (state[child] === 1) throw new ReferenceCycleError(paths[child]!, paths[node]!);
        state[child] = 1;
        stack[sp++] = child;
      } else {
        sp--;
        state[node] = 2;
      }
    }
  }
}
