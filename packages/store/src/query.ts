// Questions about valid paths: closures, referrers, derivers, outputs, the Graphviz graph.
import fs from 'node:fs';
import path from 'node:path';
import { StoreDbError } from './errors.js';
import { toStorePath } from './store-path.js';
import { refsOf, topoSortGraph, type PathGraph } from './topo-sort.js';
import type { StoreDb } from './db.js';
import type { Store } from './store.js';

/** A path that a query needs valid and is not: exit 1, as Nix. */
export class InvalidPathError extends StoreDbError {
  constructor(readonly path: string) {
    super(`path '${path}' is not valid`);
  }
}

/**
 * The store path an argument names, as Nix's followLinksToStorePath finds it: symlinks
 * outside the store (such as ./result) are followed until they land in it, and a path
 * inside a store path names that store path.
 */
export function resolveStorePath(storeDir: string, arg: string): string {
  let p = path.resolve(arg);
  for (let hops = 0; !p.startsWith(storeDir + '/') && hops < 40; hops++) {
    let target: string;
    try {
      target = fs.readlinkSync(p);
    } catch {
      break;
    }
    p = path.resolve(path.dirname(p), target);
  }
  return toStorePath(storeDir, p);
}

/** Every root must be in the graph (valid); a binary search, since graph paths are sorted. */
export function requireValid(paths: readonly string[], graph: PathGraph): void {
  for (const p of paths) if (indexIn(graph, p) < 0) throw new InvalidPathError(p);
}

/** Index of `p` in the graph's sorted paths, or -1. */
export function indexIn(graph: PathGraph, p: string): number {
  let lo = 0;
  let hi = graph.paths.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const m = graph.paths[mid]!;
    if (m === p) return mid;
    if (m < p) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

function sortedSet(db: StoreDb, set: Iterable<string>): string[] {
  return topoSortGraph(db.subgraph([...set]));
}

/** The closure of `paths` (`nix-store -qR`), references before referrers, in Nix's exact order. */
export function queryRequisites(db: StoreDb, paths: readonly string[]): string[] {
  const graph = db.closure(paths);
  requireValid(paths, graph);
  return topoSortGraph(graph);
}

/** Everything that refers to `paths`, transitively, themselves included (`--referrers-closure`). */
export function queryReferrersClosure(db: StoreDb, paths: readonly string[]): string[] {
  const graph = db.closure(paths, { up: true });
  requireValid(paths, graph);
  return topoSortGraph(graph);
}

/** The union of the direct references of `paths`, topologically sorted as Nix prints them. */
export function queryReferences(db: StoreDb, paths: readonly string[]): string[] {
  const set = new Set<string>();
  for (const p of paths) {
    const info = db.queryPathInfo(p);
    if (!info) throw new InvalidPathError(p);
    for (const r of info.references) set.add(r);
  }
  return sortedSet(db, set);
}

/** The union of the direct referrers of `paths`, topologically sorted as Nix prints them. */
export function queryReferrers(db: StoreDb, paths: readonly string[]): string[] {
  const set = new Set<string>();
  for (const p of paths) {
    if (!db.isValid(p)) throw new InvalidPathError(p);
    for (const r of db.queryReferrers(p)) set.add(r);
  }
  return sortedSet(db, set);
}

/**
 * Output paths of a .drv (sorted, as Nix prints its StorePathSet), from DerivationOutputs or,
 * when the DB has none, from the .drv itself; any other path stands for itself.
 */
export function queryOutputs(store: Store, p: string): string[] {
  if (!p.endsWith('.drv')) return [p];
  if (!store.db.isValid(p)) throw new InvalidPathError(p);
  let outs = store.db.queryDerivationOutputs(p);
  if (Object.keys(outs).length === 0) outs = store.derivationOutputsOf(p);
  return [...new Set(Object.values(outs))].sort();
}

const COLOURS = ['black', 'red', 'green', 'blue', 'magenta', 'burlywood'];

/**
 * The closure of `roots` as a Graphviz digraph, line for line what `nix-store -q --graph`
 * prints: nodes taken from a sorted work list, an edge from each reference to its
 * referrer, edge colours cycling through Nix's six.
 */
export function dotGraph(db: StoreDb, roots: readonly string[]): string[] {
  const graph = db.closure(roots);
  requireValid(roots, graph);
  const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);
  const lines = ['digraph G {'];
  const heap = new MinHeap();
  for (const r of roots) heap.push(r);
  const done = new Set<string>();
  let colour = 0;
  for (let p = heap.pop(); p !== undefined; p = heap.pop()) {
    if (done.has(p)) continue;
    done.add(p);
    const id = base(p);
    lines.push(`"${id}" [label = "${id.slice(33)}", shape = box, style = filled, fillcolor = "#ff0000"];`);
    for (const j of refsOf(graph, indexIn(graph, p))) {
      const ref = graph.paths[j]!;
      if (ref === p) continue;
      heap.push(ref);
      lines.push(`"${base(ref)}" -> "${id}" [color = "${COLOURS[colour++ % COLOURS.length]}"];`);
    }
  }
  lines.push('}');
  return lines;
}

/** A binary min-heap of strings: the work list of dotGraph (Nix's std::set, begin() first). */
class MinHeap {
  private a: string[] = [];
  push(s: string): void {
    const a = this.a;
    a.push(s);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]! <= s) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = s;
  }
  pop(): string | undefined {
    const a = this.a;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const c = l + 1 < a.length && a[l + 1]! < a[l]! ? l + 1 : l;
        if (a[c]! >= last) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}
