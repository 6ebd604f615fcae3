// Nix's topological order of store paths (topoSort in libutil), reproduced exactly.
import { DroverError } from './errors.js';

/** A reference cycle among paths that must be ordered: malformed input, exit 2. */
export class ReferenceCycleError extends DroverError {
  constructor(readonly path: string, readonly parent: string) {
    super(`cycle detected in the references of '${parent}' to '${path}'`, 2);
  }
}

/**
 * Orders `items` references first, in exactly the order `nix-store -qR` and `--export` use:
 * a post-order depth-first walk that visits the items and each node's references in
 * sorted (byte) order and ignores references outside `items` and self-references.
 * Iterative, so a 100k-long chain does not overflow the stack.
 */
export function topoSortPaths(items: Iterable<string>, referencesOf: (p: string) => readonly string[] | undefined): string[] {
  const set = items instanceof Set ? (items as Set<string>) : new Set(items);
  const roots = [...set].sort(byteOrder);
  const sorted: string[] = [];
  const visited = new Set<string>();
  const onStack = new Set<string>();
  // Each frame: the node and the sorted children still to visit.
  const stack: { node: string; children: string[]; next: number }[] = [];
  const push = (node: string) => {
    visited.add(node);
    onStack.add(node);
    const refs = referencesOf(node) ?? [];
    const children = refs.filter((r) => r !== node && set.has(r));
    if (children.length > 1 && !isSorted(children)) children.sort(byteOrder);
    stack.push({ node, children, next: 0 });
  };
  for (const root of roots) {
    if (visited.has(root)) continue;
    push(root);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.next < top.children.length) {
        const child = top.children[top.next++]!;
        if (onStack.has(child)) throw new ReferenceCycleError(child, top.node);
        if (!visited.has(child)) push(child);
      } else {
        stack.pop();
        onStack.delete(top.node);
        sorted.push(top.node);
      }
    }
  }
  return sorted;
}

/** Nix sorts store paths as byte strings; store paths are ASCII, so code units agree. */
export function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isSorted(a: readonly string[]): boolean {
  for (let i = 1; i < a.length; i++) if (a[i - 1]! > a[i]!) return false;
  return true;
}
