// Derivation DAGs for benchmarks and tests: random, wide and chain shapes of trivial builds.
import { addDerivation, type Derivation, type Store } from '@drover/store';
import { thisSystem } from './system.js';

export type DagShape = 'random' | 'wide' | 'chain';

export interface DagSpec {
  shape: DagShape;
  /** Number of derivations (wide: leaves; the root comes on top). */
  n: number;
  seed?: number;
  /** Random shape: at most this many inputs per derivation. */
  maxInputs?: number;
  /** The builder's shell command; `$out` is the output. */
  command?: string;
  /** Mixed into every derivation so separate DAGs never share paths. */
  tag?: string;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same DAG. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** For each node, the indices of its inputs (always smaller: the list is in build order). */
export function dagEdges(spec: DagSpec): number[][] {
  const edges: number[][] = [];
  if (spec.shape === 'chain') {
    for (let i = 0; i < spec.n; i++) edges.push(i === 0 ? [] : [i - 1]);
  } else if (spec.shape === 'wide') {
    for (let i = 0; i < spec.n; i++) edges.push([]);
    edges.push(Array.from({ length: spec.n }, (_, i) => i));
  } else {
    const rand = rng(spec.seed ?? 1);
    const max = spec.maxInputs ?? 3;
    for (let i = 0; i < spec.n; i++) {
      const k = Math.min(i, Math.floor(rand() * (max + 1)));
      const ins = new Set<number>();
      while (ins.size < k) ins.add(Math.floor(rand() * i));
      edges.push([...ins].sort((a, b) => a - b));
    }
  }
  return edges;
}

/**
 * Writes the DAG's derivations into `store` (inputs first) and returns their .drv paths in
 * build order. Each builds with /bin/sh and writes one small file.
 */
export async function addDag(store: Store, spec: DagSpec): Promise<string[]> {
  const edges = dagEdges(spec);
  const paths: string[] = [];
  const system = thisSystem();
  const cmd = spec.command ?? 'echo $name > $out';
  for (let i = 0; i < edges.length; i++) {
    const name = `${spec.shape}-${i}`;
    const inputDrvs: Record<string, string[]> = Object.create(null);
    for (const j of edges[i]!) inputDrvs[paths[j]!] = ['out'];
    const drv: Derivation = {
      outputs: { out: { path: '' } },
      inputDrvs,
      inputSrcs: [],
      system,
      builder: '/bin/sh',
      args: ['-c', cmd],
      env: { name, system, builder: '/bin/sh', out: '', ...(spec.tag ? { tag: spec.tag } : {}) },
    };
    paths.push(await addDerivation(store, drv, name));
  }
  return paths;
}
