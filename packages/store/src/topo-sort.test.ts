// Tests for topo-sort.ts: Nix's exact order, cycles, and long chains.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceCycleError, topoSortPaths } from './topo-sort.js';

test('references come first, in the order of a sorted post-order walk (as nix-store -qR prints)', () => {
  const refs: Record<string, string[]> = { '/s/d-top': ['/s/b-lib', '/s/a-libc', '/s/d-top'], '/s/b-lib': ['/s/a-libc'], '/s/a-libc': [], '/s/c-other': ['/s/a-libc'] };
  assert.deepEqual(topoSortPaths(Object.keys(refs), (p) => refs[p]), ['/s/a-libc', '/s/b-lib', '/s/c-other', '/s/d-top']);
  // References outside the set are ignored.
  assert.deepEqual(topoSortPaths(['/s/d-top', '/s/a-libc'], (p) => refs[p]), ['/s/a-libc', '/s/d-top']);
  // The walk starts at the smallest item, so a referrer that sorts first puts its chain first.
  const r2: Record<string, string[]> = { '/s/a-x': ['/s/z-dep'], '/s/m-y': [], '/s/z-dep': [] };
  assert.deepEqual(topoSortPaths(Object.keys(r2), (p) => r2[p]), ['/s/z-dep', '/s/a-x', '/s/m-y']);
});

test('a cycle is an error naming both paths', () => {
  const refs: Record<string, string[]> = { '/s/a': ['/s/b'], '/s/b': ['/s/a'] };
  assert.throws(() => topoSortPaths(Object.keys(refs), (p) => refs[p]), (e: unknown) => e instanceof ReferenceCycleError && /'\/s\/a'/.test(e.message) && e.exitCode === 2);
});

test('a 200k-long chain sorts without recursion limits', () => {
  const n = 200_000;
  const name = (i: number) => `/s/${String(i).padStart(7, '0')}`;
  const order = topoSortPaths(
    Array.from({ length: n }, (_, i) => name(i)),
    (p) => {
      const i = Number(p.slice(3));
      return i > 0 ? [name(i - 1)] : [];
    },
  );
  assert.equal(order.length, n);
  assert.equal(order[0], name(0));
  assert.equal(order[n - 1], name(n - 1));
});
